%% EUnit: a failed copy between nodes is a tagged reason inside a node, `{copy_failed, Why}',
%% whose words (`emqx_guard_outcome:format_error/1') are the lines the copy said before it had
%% reasons; protocol version 1 carries it as that line (`wire/1'), and a line that arrives
%% (`from_wire/1') is said as it came.
-module(emqx_guard_cluster_errors_tests).

-include_lib("eunit/include/eunit.hrl").

line(Reason) ->
    emqx_guard_outcome:format_error(Reason).

copy(Why) ->
    line({copy_failed, Why}).

the_sending_side_says_what_failed_test() ->
    ?assertEqual(<<"not an EMQX export name">>, copy(not_export_name)),
    ?assertEqual(
        <<"the source copy does not verify: truncated gzip stream">>,
        copy({source_not_verified, {corrupt, <<"truncated gzip stream">>}})
    ),
    ?assertEqual(<<"copy crashed: error:badarg">>, copy({crashed, {error, badarg}})),
    ?assertEqual(<<"unexpected answer: {what,ever}">>, copy({unexpected_answer, {what, ever}})),
    ?assertEqual(<<"cannot read /b/x.tar.gz: no such file or directory">>, copy({cannot_read, {<<"/b/x.tar.gz">>, enoent}})),
    ?assertEqual(<<"read error: I/O error">>, copy({read_error, eio})),
    ?assertEqual(<<"the receiver stopped: killed">>, copy({receiver_stopped, killed})),
    ?assertEqual(<<"the receiver did not answer in time">>, copy(receiver_silent)),
    ?assertEqual(<<"the receiver finished early">>, copy(receiver_finished_early)),
    ?assertEqual(<<"the receiver did not finish in time">>, copy(receiver_not_finished)),
    ?assertEqual(<<"no node holds it any more">>, copy(no_source)),
    ?assertEqual(<<"b@h cannot be reached: noconnection">>, copy({unreachable, {'b@h', noconnection}})),
    ?assertEqual(<<"b@h failed: exit:boom">>, copy({remote_failed, {'b@h', exit, boom}})).

the_receiving_side_says_what_failed_test() ->
    Name = <<"emqx-export-2026-01-01-00-00-00.000.tar.gz">>,
    ?assertEqual(<<"refused: x.tgz is not an EMQX export name">>, copy({not_export_name, <<"x.tgz">>})),
    ?assertEqual(<<Name/binary, " already exists on b@h with other content">>, copy({other_content, {Name, 'b@h'}})),
    ?assertEqual(<<Name/binary, " already exists on b@h and does not verify">>, copy({kept_not_verified, {Name, 'b@h'}})),
    ?assertEqual(<<"cannot write in /b on b@h: permission denied">>, copy({cannot_write, {"/b", 'b@h', eacces}})),
    ?assertEqual(<<"the receiver on b@h failed: oops">>, copy({receiver_failed, {'b@h', oops}})),
    ?assertEqual(<<"receiver crashed: error:badarg">>, copy({receiver_crashed, {error, badarg}})),
    ?assertEqual(<<"write error on b@h: no space left on device">>, copy({write_error, {'b@h', enospc}})),
    ?assertEqual(<<"sent 10 bytes but 8 arrived">>, copy({size_sent, {10, 8}})),
    ?assertEqual(<<"the sender gave up">>, copy(sender_gave_up)),
    ?assertEqual(<<"the sender stopped: noconnection">>, copy({sender_stopped, noconnection})),
    ?assertEqual(<<"the sender went silent">>, copy(sender_silent)),
    ?assertEqual(<<"cannot sync on b@h: I/O error">>, copy({cannot_sync, {'b@h', eio}})),
    ?assertEqual(<<"cannot set mode 0600: not owner">>, copy({cannot_set_mode, eperm})),
    ?assertEqual(<<"sha256 differs after the copy (aa, expected bb)">>, copy({sha256_differs, {<<"aa">>, <<"bb">>}})),
    ?assertEqual(<<"the copy does not verify: no META.hocon">>, copy({copy_not_verified, {incomplete, <<"no META.hocon">>}})),
    ?assertEqual(<<"8 bytes arrived, the backup has 10">>, copy({size_arrived, {8, 10}})),
    ?assertEqual(<<"the plugins companion cannot be read: bad_manifest">>, copy({companion_unreadable, bad_manifest})),
    ?assertEqual(<<"cannot rename into /b: file already exists">>, copy({cannot_rename, {"/b", eexist}})).

%% What crosses to another node is the line; the line that arrives is said as it came, so a
%% failure reads the same on both sides (and to a node of 0.1.0, which sends and expects lines).
protocol_version_1_carries_the_line_test() ->
    Reason = {copy_failed, {sha256_differs, {<<"aa">>, <<"bb">>}}},
    {error, Line} = Wire = emqx_guard_cluster_errors:wire({error, Reason}),
    ?assertEqual(<<"sha256 differs after the copy (aa, expected bb)">>, Line),
    ?assertEqual(ok, emqx_guard_cluster_errors:wire(ok)),
    ?assertEqual({ok, already_present}, emqx_guard_cluster_errors:wire({ok, already_present})),
    {error, Arrived} = emqx_guard_cluster_errors:from_wire(Wire),
    ?assertEqual(Line, line(Arrived)),
    %% a line of 0.1.0
    {error, Old} = emqx_guard_cluster_errors:from_wire({error, <<"the sender went silent">>}),
    ?assertEqual(<<"the sender went silent">>, line(Old)).

a_node_without_a_report_test() ->
    ?assertEqual(<<"no answer: {error,{erpc,timeout}}">>, line({no_report, {error, {erpc, timeout}}})),
    ?assertEqual(
        <<"version mismatch: it speaks protocol version 3, this node 1, 2">>, line({version_mismatch, [3], [1, 2]})
    ).

the_scheduler_not_running_test() ->
    ?assertEqual(<<"the emqx_guard scheduler is not running">>, line({not_running, emqx_guard_scheduler})).
