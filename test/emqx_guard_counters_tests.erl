%% @doc EUnit tests of `emqx_guard_counters': counters that survive a restart of their server, and
%% a damaged counters file that loses only what is damaged.
-module(emqx_guard_counters_tests).

-include_lib("eunit/include/eunit.hrl").

counts_survive_a_restart_test() ->
    with_server(fun() ->
        ?assertEqual(#{}, emqx_guard_counters:all()),
        [ok = emqx_guard_counters:bump(K) || K <- [{offsite_upload, ok}, {offsite_upload, ok}, {notify_delivery, webhook, failed}]],
        %% not a counter: ignored
        ok = emqx_guard_counters:bump({offsite_upload, maybe_later}),
        Counted = #{{offsite_upload, ok} => 2, {notify_delivery, webhook, failed} => 1},
        ?assertEqual(Counted, emqx_guard_counters:all()),
        restart(),
        ?assertEqual(Counted, emqx_guard_counters:all()),
        ?assertMatch({ok, {emqx_guard_counters, 1, [_, _]}}, emqx_guard_store:read(emqx_guard_counters:path()))
    end).

damaged_entries_are_dropped_test() ->
    with_server(fun() ->
        Path = emqx_guard_counters:path(),
        ok = filelib:ensure_dir(Path),
        ok = gen_server:stop(emqx_guard_counters),
        ok = file:write_file(Path, io_lib:format("~tp.~n", [{emqx_guard_counters, 1,
            [{{offsite_upload, ok}, 3}, {{offsite_upload, ok}, -1}, {{notify_delivery, "email", ok}, 2}, garbage,
             {{notify_delivery, email, failed}, 4}]}])),
        {ok, _} = emqx_guard_counters:start_link(),
        ?assertEqual(#{{offsite_upload, ok} => 3, {notify_delivery, email, failed} => 4}, emqx_guard_counters:all()),
        ok = gen_server:stop(emqx_guard_counters),
        ok = file:write_file(Path, <<"not a term">>),
        {ok, _} = emqx_guard_counters:start_link(),
        ?assertEqual(#{}, emqx_guard_counters:all())
    end).

%% Without a server the counters are empty, and a bump is lost silently.
no_server_no_counts_test() ->
    ?assertEqual(undefined, whereis(emqx_guard_counters)),
    ?assertEqual(#{}, emqx_guard_counters:all()),
    ?assertEqual(ok, emqx_guard_counters:bump({offsite_upload, ok})).

%%--------------------------------------------------------------------

with_server(Fun) ->
    Dir = filename:join(["/tmp", "emqx_guard_eunit_counters_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = emqx:set_data_dir(Dir),
    {ok, Pid} = emqx_guard_counters:start_link(),
    unlink(Pid),
    try
        Fun()
    after
        ok = stop(),
        _ = file:del_dir_r(Dir),
        emqx:reset()
    end.

restart() ->
    %% every bump cast before is handled before the stop
    _ = emqx_guard_counters:all(),
    ok = gen_server:stop(emqx_guard_counters),
    {ok, Pid} = emqx_guard_counters:start_link(),
    unlink(Pid).

stop() ->
    try
        gen_server:stop(emqx_guard_counters)
    catch
        exit:_ -> ok
    end.
