%% EUnit: which notification event a run outcome is (`emqx_guard_notify_facts:event_of/1').
%% A good backup is `backup_ok', a failed one `backup_failed'; a skipped fire (another node
%% exports it, its lock is held, it was exported already, no core node can export, a run was
%% still going) and anything else is `none': no message at all.
-module(emqx_guard_notify_facts_tests).

-include_lib("eunit/include/eunit.hrl").

-define(NODE, 'core_a@host').

event_of(O) ->
    emqx_guard_notify_facts:event_of(O).

new() ->
    emqx_guard_outcome:new(scheduled, 1795824060000, 1795824060000).

ok_and_failed_test() ->
    Ok = emqx_guard_outcome:finish(new(), 1200),
    ?assertEqual(backup_ok, event_of(Ok)),
    Failed = emqx_guard_outcome:finish(emqx_guard_outcome:fail(new(), {export_failed, #{reason => enospc}}), 30),
    ?assertEqual(backup_failed, event_of(Failed)),
    %% a failed manual run too
    Manual = emqx_guard_outcome:fail(emqx_guard_outcome:new(manual, undefined, 1795824060000), {export_timeout, #{timeout_ms => 600000}}),
    ?assertEqual(backup_failed, event_of(emqx_guard_outcome:finish(Manual, 600000))).

every_skip_is_no_event_test_() ->
    Skips = [
        {not_responsible, ?NODE},
        {lock_held, ?NODE},
        {already_exported, ?NODE},
        no_core_node,
        {no_candidate, [{?NODE, plugin_not_running}]},
        {previous_run_still_running, 1795824000000}
    ],
    [
        {iolist_to_binary(io_lib:format("~0p", [Skip])), fun() ->
            Outcome = emqx_guard_outcome:finish(emqx_guard_outcome:skip(new(), Skip), 3),
            ?assertMatch(#{result := skipped, error := <<_/binary>>}, Outcome),
            ?assertEqual(none, event_of(Outcome))
        end}
     || Skip <- Skips
    ].

%% A run not closed yet, or a map that is no outcome at all, is no event either.
unknown_shapes_are_no_event_test() ->
    ?assertEqual(none, event_of(new())),
    ?assertEqual(none, event_of(#{})),
    ?assertEqual(none, event_of(#{result => <<"failed">>})),
    ?assertEqual(none, event_of(#{result => error, error => <<"x">>})),
    ?assertEqual(none, event_of(#{error => <<"no result">>})).

%% Randomized: whatever else a map holds, only `result := ok' is `backup_ok' and only
%% `result := failed' is `backup_failed'; every other result is `none'.
only_ok_and_failed_notify_test() ->
    rand:seed(exsss, {18, 19, 2026}),
    Results = [ok, failed, skipped, running, error, undefined, true, 0, <<"ok">>, "failed", {failed}],
    Keys = [trigger, started_at, node, error, reason, file, responsible, exported_by, offsite, warnings],
    lists:foreach(
        fun(_) ->
            Extra = maps:from_list([{K, random_value()} || K <- Keys, rand:uniform(2) =:= 1]),
            Result = lists:nth(rand:uniform(length(Results)), Results),
            Expected =
                case Result of
                    ok -> backup_ok;
                    failed -> backup_failed;
                    _ -> none
                end,
            ?assertEqual(Expected, event_of(Extra#{result => Result}), {Result, Extra})
        end,
        lists:seq(1, 500)
    ).

random_value() ->
    case rand:uniform(5) of
        1 -> rand:uniform(1 bsl 40);
        2 -> ?NODE;
        3 -> <<"text">>;
        4 -> [];
        5 -> #{result => failed}
    end.
