%% @doc EUnit: the wording of notifications (emqx_guard_notify_format).
-module(emqx_guard_notify_format_tests).

-include_lib("eunit/include/eunit.hrl").

-define(F, emqx_guard_notify_format).

facts() ->
    #{
        node => 'emqx@n1',
        %% 2024-07-01 10:00:00 UTC, 12:00 in Berlin (CEST)
        started_at => 1719828000000,
        zone => <<"Europe/Berlin">>,
        offsets => #{started_at => 7200, next_fire => 7200},
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
            ?F:subject(backup_failed, F#{error => <<"export failed:\ndisk full (enospc)">>})),
        ?_assertEqual(<<"[emqx_guard] backup MISSING on emqx@n1: none succeeded since 2024-07-01 12:00:00 +02:00 (Europe/Berlin)">>,
            ?F:subject(dead_man, F#{last_success => 1719828000000, offsets => #{last_success => 7200}})),
        ?_assertEqual(<<"[emqx_guard] test message from emqx@n1">>, ?F:subject(test, F))
    ].

long_reason_is_cut_in_the_subject_test() ->
    S = ?F:subject(backup_failed, #{node => n, error => binary:copy(<<"x">>, 500)}),
    ?assert(byte_size(S) < 250),
    ?assertMatch(<<_:1/binary, _/binary>>, binary:part(S, byte_size(S) - 3, 3)),
    ?assertEqual(<<"...">>, binary:part(S, byte_size(S) - 3, 3)).

body_ok_test() ->
    B = ?F:body(backup_ok, facts()),
    [
        ?assertNotEqual(nomatch, binary:match(B, Want), Want)
     || Want <- [
            <<"Node:         emqx@n1\n">>,
            <<"Time:         2024-07-01 12:00:00 +02:00 (Europe/Berlin)\n">>,
            <<"File:         /var/lib/emqx/backup/emqx-export-2024-07-01-12-00-00.000.tar.gz\n">>,
            <<"Size:         5.3 MiB (5550080 bytes)\n">>,
            <<"SHA-256:      00ff\n">>,
            <<"Duration:     1 min 1 s\n">>,
            <<"Next backup:  2024-07-07 12:00:00 +02:00 (Europe/Berlin)\n">>,
            <<"Backups now kept (1):\n  emqx-export-2024-07-01-12-00-00.000.tar.gz  10 B  (this run)\n">>,
            <<"  emqx_ctl data import /var/lib/emqx/backup/emqx-export-2024-07-01-12-00-00.000.tar.gz\n">>
        ]
    ].

body_failed_has_no_restore_command_test() ->
    B = ?F:body(backup_failed, maps:without([file, path, size, sha256], (facts())#{error => <<"boom">>})),
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

%% The run's start and error keep the names the webhook document always had: time, reason.
webhook_keeps_its_field_names_test() ->
    J = ?F:webhook(backup_failed, (facts())#{error => <<"disk full">>}),
    [?assertNotEqual(nomatch, binary:match(J, Want), Want) || Want <- [<<"\"reason\":\"disk full\"">>, <<"\"time_ms\":1719828000000">>]],
    [?assertEqual(nomatch, binary:match(J, Gone), Gone) || Gone <- [<<"\"error\"">>, <<"started_at">>]].

cut_test_() ->
    Long = binary:copy(<<"é"/utf8>>, 100),
    [
        ?_assertEqual(<<"short">>, ?F:cut(<<"short">>, 10)),
        ?_assert(byte_size(?F:cut(Long, 80)) =< 80),
        %% never inside a character, and saying so
        ?_assertMatch(<<_/utf8, _/binary>>, ?F:cut(Long, 81)),
        ?_assertNotEqual(nomatch, binary:match(?F:cut(Long, 81), <<"(cut: too long for this channel)">>)),
        ?_assert(is_binary(unicode:characters_to_binary(?F:cut(Long, 81))))
    ].

%% The off-site events: their own title and head, the error, the destination and the job's result
%% as one fact line (and webhook fields); no restore command (the backup itself is fine).
offsite_events_test() ->
    Base = #{node => 'emqx@n1', time => 1719828000000, destination => <<"s3://acme/emqx">>,
             file => <<"emqx-export-2024-07-01-12-00-00.000.tar.gz">>},
    Failed = #{result => failed, uploaded => [], pruned => [], error => <<"upload of x failed: denied">>},
    F1 = Base#{offsite => Failed, error => <<"upload of x failed: denied">>},
    ?assertEqual(<<"[emqx_guard] off-site copy FAILED on emqx@n1: upload of x failed: denied">>, ?F:subject(offsite_failed, F1)),
    L1 = ?F:lines(offsite_failed, F1),
    ?assert(lists:member({<<"Off-site">>, <<"FAILED: upload of x failed: denied">>}, L1), L1),
    ?assert(lists:member({<<"Destination">>, <<"s3://acme/emqx">>}, L1), L1),
    ?assert(lists:member({<<"Error">>, <<"upload of x failed: denied">>}, L1), L1),
    ?assertEqual(undefined, ?F:restore(offsite_failed, F1)),
    B1 = ?F:body(offsite_failed, F1),
    ?assertMatch(<<"emqx_guard: an off-site copy FAILED. The backups on this node are fine", _/binary>>, B1),
    Ok = #{result => ok, uploaded => [<<"a.tar.gz.age">>], pruned => [<<"b.tar.gz.age">>]},
    F2 = Base#{offsite => Ok},
    ?assertEqual(<<"[emqx_guard] off-site copies OK again on emqx@n1: uploaded a.tar.gz.age; 1 older remote backup(s) pruned">>,
                 ?F:subject(offsite_ok, F2)),
    ?assert(lists:member({<<"Off-site">>, <<"uploaded a.tar.gz.age; 1 older remote backup(s) pruned">>}, ?F:lines(offsite_ok, F2))),
    J = ?F:webhook(offsite_ok, F2),
    ?assertNotEqual(nomatch, binary:match(J, <<"\"event\":\"offsite_ok\"">>)),
    ?assertNotEqual(nomatch, binary:match(J, <<"\"offsite\":\"uploaded a.tar.gz.age">>)),
    ?assertNotEqual(nomatch, binary:match(J, <<"\"destination\":\"s3://acme/emqx\"">>)),
    ?assertEqual(nomatch, binary:match(J, <<"restore_command">>)),
    %% a paused remote retention is said in the result's line
    Paused = Ok#{pruned => [], retention => #{paused => #{foreign => 3, own => 1, keep => 5}}},
    ?assert(lists:member({<<"Off-site">>, <<"uploaded a.tar.gz.age; remote retention paused">>}, ?F:lines(offsite_ok, Base#{offsite => Paused}))).
