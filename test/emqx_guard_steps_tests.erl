%% @doc EUnit tests of the step channel (`emqx_guard_steps') and the words of its events
%% (`emqx_guard_steps_cli').
-module(emqx_guard_steps_tests).

-include_lib("eunit/include/eunit.hrl").

%% However often a step reports progress, at most one a second gets through (counted from the
%% step's start); every other event passes.
throttled_progress_test() ->
    Seen = atomics:new(1, []),
    Report = emqx_guard_steps:throttled(fun(_) -> atomics:add(Seen, 1, 1) end),
    T0 = erlang:monotonic_time(millisecond),
    [Report({progress, prune, #{checked => N}}) || N <- lists:seq(1, 2000)],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    Passed = atomics:get(Seen, 1),
    ?assert(Passed =< Elapsed div 1000, {Passed, Elapsed}),
    [Report(E) || E <- [{started, prune, #{keep => 1}}, {done, prune, #{duration_ms => 1, deleted => 0}}]],
    ?assertEqual(Passed + 2, atomics:get(Seen, 1)).

lines_test_() ->
    L = fun emqx_guard_steps_cli:line/1,
    [
        ?_assertEqual(<<"export: started (EMQX data export)">>, L({started, export, #{}})),
        ?_assertEqual(<<"export: Exporting cluster configuration...">>, L({line, export, <<"Exporting cluster configuration...">>})),
        ?_assertEqual(<<"export: running for 2.0 s, 1.5 MiB written">>,
                      L({progress, export, #{elapsed_ms => 2000, written => 1572864}})),
        ?_assertEqual(<<"verify: done in 2.0 s: verified, 4.0 MiB at 2.0 MiB/s">>,
                      L({done, verify, #{duration_ms => 2000, size => 4194304, result => ok}})),
        ?_assertEqual(<<"verify: done in 5 ms: a.tar.gz: NOT VERIFIED: truncated">>,
                      L({done, verify, #{duration_ms => 5, file => <<"a.tar.gz">>, result => {error, {truncated, <<"truncated">>}}}})),
        ?_assertEqual(<<"prune: read 2 of 5 file(s) it had no record of (2.0 KiB of 5.0 KiB)">>,
                      L({progress, prune, #{checked => 2, checked_bytes => 2048, remaining => 3, remaining_bytes => 3072}})),
        ?_assertEqual(<<"copy: handed over: the copies to b@h, c@h follow after the run">>, L({done, copy, #{to => ['b@h', 'c@h']}})),
        ?_assertEqual(<<"off-site: queued for upload to s3://b/p">>, L({done, offsite, #{destination => <<"s3://b/p">>}})),
        ?_assertEqual(<<"verify: FAILED after 1.5 s: could not verify">>,
                      L({failed, verify, #{duration_ms => 1500, error => <<"could not verify">>}})),
        ?_assertEqual(<<"download: 1.0 MiB of 4.0 MiB (25%)">>,
                      L({progress, download, #{phase => downloading, bytes => 1048576, total => 4194304, elapsed_ms => 1000}}))
    ].
