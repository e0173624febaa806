%% EUnit: candidacy answers of `emqx_guard_election' without a cluster (the peer suites,
%% emqx_guard_cluster_SUITE and emqx_guard_cluster_notify_SUITE, run the election itself): a node
%% that does not answer, or where the plugin does not run, is no candidate, and why is one line.
-module(emqx_guard_election_tests).

-include_lib("eunit/include/eunit.hrl").

%% No node by that name can be reached: not a candidate, and the reason says so.
unreachable_node_is_no_candidate_test() ->
    Nobody = 'nobody_here@nowhere.invalid',
    [Answer] = emqx_guard_election:ask_candidacies([Nobody]),
    ?assertMatch(#{exporter := {error, {no_answer, _}}, watch := {error, {no_answer, _}}, last_result := undefined}, Answer),
    #{exporter := {error, Why}} = Answer,
    Line = emqx_guard_outcome:format_excluded([{Nobody, Why}]),
    ?assertMatch(<<"nobody_here@nowhere.invalid: no answer (", _/binary>>, Line).

%% Here the plugin's processes are not running: this node answers that it cannot export and
%% cannot watch, without waiting.
no_plugin_no_candidacy_test() ->
    ?assertEqual(undefined, whereis(emqx_guard_scheduler)),
    ?assertMatch(
        #{exporter := {error, plugin_not_running}, watch := {error, plugin_not_running}, last_result := undefined},
        emqx_guard_election:candidacy()
    ),
    ?assertEqual(<<"plugin not running">>, emqx_guard_outcome:format_error(plugin_not_running)).

%% The reasons a core is passed over, each as the line `guard backup_status' shows.
why_not_lines_test() ->
    Lines = emqx_guard_outcome:format_excluded([
        {'core_a@h', plugin_not_running},
        {'core_b@h', {nif_not_loaded, <<"no library for riscv64">>}},
        {'core_c@h', {schedule_error, <<"bad zone">>}},
        {'core_d@h', {export_unsupported, <<"backups cannot run: no data export">>}},
        {'core_e@h', {no_answer, timeout}}
    ]),
    ?assertEqual(
        <<"core_a@h: plugin not running; core_b@h: the NIF library is not loaded: no library for riscv64; "
          "core_c@h: the schedule cannot be computed: bad zone; core_d@h: backups cannot run: no data export; "
          "core_e@h: no answer (timeout)">>,
        Lines
    ),
    ?assertEqual(
        <<"no core node can export scheduled backups (core_a@h: plugin not running)">>,
        emqx_guard_outcome:format_error({no_candidate, [{'core_a@h', plugin_not_running}]})
    ).
