%% @doc EUnit: the wording of notifications (emqx_guard_notify_format).
-module(emqx_guard_notify_format_tests).

-include_lib("eunit/include/eunit.hrl").

-define(F, emqx_guard_notify_format).

facts() ->
    #{
        node => 'emqx@n1',
        %% 2024-07-01 10:00:00 UTC, 12:00 in Berlin (CEST)
        time => 1719828000000,
        zone => <<"Europe/Berlin">>,
        offsets => #{time => 7200, next_fire => 7200},
        next_fire => 1720346400000,
        file => <<"emqx-export-2024-07-01-12-00-00.000.tar.gz">>,
        path => <<"/var/lib/emqx/backup/emqx-export-2024-07-01-12-00-00.000.tar.gz">>,
        size => 5 * 1024 * 1024 + 300 * 1024,
        sha256 => <<"00ff">>,
        duration_ms => 61500,
        kept => [#{name => <<"emqx-export-2024-07-01-12-00-00.000.tar.gz">>, size => 10, mtime => 1}]
    }.

subjects_test_() ->
    F = facts(),
    [
        ?_assertEqual(<<"[emqx_guard] backup OK on emqx@n1: emqx-export-2024-07-01-12-00-00.000.tar.gz (5.3 MiB)">>,
            ?F:subject(backup_ok, F)),
        ?_assertEqual(<<"[emqx_guard] backup FAILED on emqx@n1: export failed: disk full (enospc)">>,
            ?F:subject(backup_failed, F#{reason => <<"export failed:\ndisk full (enospc)">>})),
        ?_assertEqual(<<"[emqx_guard] backup MISSING on emqx@n1: none succeeded since 2024-07-01 12:00:00+02:00 (Europe/Berlin)">>,
            ?F:subject(dead_man, F#{last_success => 1719828000000, offsets => #{last_success => 7200}})),
        ?_assertEqual(<<"[emqx_guard] test message from emqx@n1">>, ?F:subject(test, F))
    ].

long_reason_is_cut_in_the_subject_test() ->
    S = ?F:subject(backup_failed, #{node => n, reason => binary:copy(<<"x">>, 500)}),
    ?assert(byte_size(S) < 250),
    ?assertMatch(<<_:1/binary, _/binary>>, binary:part(S, byte_size(S) - 3, 3)),
    ?assertEqual(<<"...">>, binary:part(S, byte_size(S) - 3, 3)).

body_ok_test() ->
    B = ?F:body(backup_ok, facts()),
    [
        ?assertNotEqual(nomatch, binary:match(B, Want), Want)
     || Want <- [
            <<"Node:         emqx@n1\n">>,
            <<"Time:         2024-07-01 12:00:00+02:00 (Europe/Berlin)\n">>,
            <<"File:         /var/lib/emqx/backup/emqx-export-2024-07-01-12-00-00.000.tar.gz\n">>,
            <<"Size:         5.3 MiB (5550080 bytes)\n">>,
            <<"SHA-256:      00ff\n">>,
            <<"Duration:     1 min 1 s\n">>,
            <<"Next backup:  2024-07-07 12:00:00+02:00 (Europe/Berlin)\n">>,
            <<"Backups now kept (1):\n  emqx-export-2024-07-01-12-00-00.000.tar.gz  10 B  (this run)\n">>,
            <<"  emqx_ctl data import /var/lib/emqx/backup/emqx-export-2024-07-01-12-00-00.000.tar.gz\n">>
        ]
    ].

body_failed_has_no_restore_command_test() ->
    B = ?F:body(backup_failed, maps:without([file, path, size, sha256], (facts())#{reason => <<"boom">>})),
    ?assertNotEqual(nomatch, binary:match(B, <<"Error:        boom\n">>)),
    ?assertEqual(nomatch, binary:match(B, <<"emqx_ctl">>)).

webhook_is_json_with_the_facts_test() ->
    J = ?F:webhook(backup_ok, facts()),
    [
        ?assertNotEqual(nomatch, binary:match(J, Want), Want)
     || Want <- [
            <<"\"event\":\"backup_ok\"">>,
            <<"\"node\":\"emqx@n1\"">>,
            <<"\"size\":5550080">>,
            <<"\"time\":\"2024-07-01T12:00:00+02:00\"">>,
            <<"\"time_ms\":1719828000000">>,
            <<"\"restore_command\":\"emqx_ctl data import /var/lib/emqx/backup/">>,
            <<"\"text\":\"emqx_guard: the backup succeeded.\\n\\nNode:">>
        ]
    ].

human_size_test_() ->
    [
        ?_assertEqual(<<"0 B">>, ?F:human_size(0)),
        ?_assertEqual(<<"1023 B">>, ?F:human_size(1023)),
        ?_assertEqual(<<"1.0 KiB">>, ?F:human_size(1024)),
        ?_assertEqual(<<"1.5 GiB">>, ?F:human_size(3 * 512 * 1024 * 1024))
    ].

local_time_test_() ->
    [
        ?_assertEqual(<<"1970-01-01 00:00:00+00:00">>, ?F:local_time(0, 0, <<" ">>)),
        ?_assertEqual(<<"1969-12-31T19:00:00-05:00">>, ?F:local_time(0, -5 * 3600, <<"T">>)),
        ?_assertEqual(<<"1970-01-01 05:30:00+05:30">>, ?F:local_time(0, 5 * 3600 + 1800, <<" ">>))
    ].
