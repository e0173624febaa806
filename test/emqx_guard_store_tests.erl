%% EUnit: the one rule for data file formats, `emqx_guard_store:load/2' (every file of the plugin
%% through it: emqx_guard_state_file_SUITE). Older formats are upgraded step by step, a file from
%% before versions is read as the version its owner names, a gap or a failing step is damage, and
%% a newer file that cannot be kept aside is never written over.
-module(emqx_guard_store_tests).

-include_lib("eunit/include/eunit.hrl").

-define(FORMAT, #{
    tag => thing,
    version => 3,
    unversioned => 1,
    upgrades => #{1 => fun(#{a := A}) -> #{a => A, b => 0} end, 2 => fun(M) -> M#{c => done} end}
}).

older_formats_are_upgraded_step_by_step_test() ->
    with_file(fun(Path) ->
        ok = emqx_guard_store:write(Path, {thing, 1, #{a => 1}}),
        ?assertEqual({ok, #{a => 1, b => 0, c => done}}, emqx_guard_store:load(Path, ?FORMAT)),
        ok = emqx_guard_store:write(Path, {thing, 2, #{a => 1, b => 5}}),
        ?assertEqual({ok, #{a => 1, b => 5, c => done}}, emqx_guard_store:load(Path, ?FORMAT)),
        ok = emqx_guard_store:save(Path, ?FORMAT, #{a => 2}),
        ?assertEqual({ok, {thing, 3, #{a => 2}}}, emqx_guard_store:read(Path)),
        ?assertEqual({ok, #{a => 2}}, emqx_guard_store:load(Path, ?FORMAT)),
        %% written before files had versions: the bare body of version 1
        ok = emqx_guard_store:write(Path, #{a => 7}),
        ?assertEqual({ok, #{a => 7, b => 0, c => done}}, emqx_guard_store:load(Path, ?FORMAT))
    end).

what_no_step_reads_is_damaged_test() ->
    with_file(fun(Path) ->
        ?assertEqual(none, emqx_guard_store:load(Path, ?FORMAT)),
        %% the step from 1 cannot read this body
        ok = emqx_guard_store:write(Path, {thing, 1, [not_a_map]}),
        ?assertEqual({damaged, {not_upgradable, 1}}, emqx_guard_store:load(Path, ?FORMAT)),
        %% no step from 2
        ok = emqx_guard_store:write(Path, {thing, 2, #{a => 1}}),
        ?assertEqual({damaged, {unknown_version, 2}}, emqx_guard_store:load(Path, ?FORMAT#{upgrades := #{}})),
        ok = emqx_guard_store:write(Path, {other_thing, 3, #{}}),
        ?assertEqual({damaged, unexpected_content}, emqx_guard_store:load(Path, maps:remove(unversioned, ?FORMAT))),
        ok = file:write_file(Path, <<"{thing, 3, ">>),
        ?assertMatch({damaged, _}, emqx_guard_store:load(Path, ?FORMAT))
    end).

%% A newer file is kept aside once (later loads say `newer' again, quietly) and the owner may
%% write its own; when it cannot be kept aside, nothing writes over it until it is read as a
%% format this plugin knows.
newer_file_is_kept_or_never_written_test() ->
    with_file(fun(Path) ->
        ok = emqx_guard_store:write(Path, {thing, 4, #{new => yes}}),
        {ok, Newer} = file:read_file(Path),
        {ok, Logs} = emqx_guard_test_logs:start(),
        ?assertEqual(newer, emqx_guard_store:load(Path, ?FORMAT)),
        ?assertEqual(newer, emqx_guard_store:load(Path, ?FORMAT)),
        Lines = [R || R = #{msg := emqx_guard_state_file_newer} <- emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Logs))],
        Kept = Path ++ ".newer-v4",
        ?assertMatch([#{version := 4, this_plugin_reads := 3, kept_as := _}], Lines),
        ?assertEqual({ok, Newer}, file:read_file(Kept)),
        ok = emqx_guard_store:save(Path, ?FORMAT, #{a => 1}),
        ?assertEqual({ok, #{a => 1}}, emqx_guard_store:load(Path, ?FORMAT)),

        %% version 5 cannot be kept: its copy's name is taken by a directory
        ok = emqx_guard_store:write(Path, {thing, 5, #{newer => yes}}),
        ok = file:make_dir(Path ++ ".newer-v5"),
        ?assertEqual(newer, emqx_guard_store:load(Path, ?FORMAT)),
        {error, Why} = emqx_guard_store:save(Path, ?FORMAT, #{a => 2}),
        ?assertMatch({newer_format_kept, #{version := 5}}, Why),
        ?assertMatch({match, _}, re:run(emqx_guard_outcome:format_error(Why), "^not writing .* newer format \\(version 5\\)")),
        ?assertEqual({ok, {thing, 5, #{newer => yes}}}, emqx_guard_store:read(Path)),
        %% the newer plugin wrote it in this format again: writable as before
        ok = file:write_file(Path, <<"{thing, 3, #{a => 3}}.">>),
        ?assertEqual({ok, #{a => 3}}, emqx_guard_store:load(Path, ?FORMAT)),
        ?assertEqual(ok, emqx_guard_store:save(Path, ?FORMAT, #{a => 4}))
    end).

with_file(Test) ->
    Dir = filename:join(["/tmp", "emqx_guard_store_tests_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    try
        Test(filename:join(Dir, "thing.eterm"))
    after
        file:del_dir_r(Dir)
    end.
