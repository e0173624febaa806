%% Common Test suite for the plugin in a cluster: three real Erlang nodes started with OTP's
%% `peer' module (two core nodes, one replicant), each running the plugin against the stand-ins
%% with its own data dir (`emqx_guard_cluster_helper' starts them and drives their clocks).
-module(emqx_guard_cluster_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([restore_refused_while_nodes_run_another_minor/1]).
-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([
    one_scheduler_for_the_cluster/1,
    contended_instant_is_skipped/1,
    responsible_dies_during_its_run/1,
    copies_stream_verify_and_clean_up/1,
    partial_copy_is_cleared_at_start/1,
    pushed_password_is_never_logged/1,
    settings_survive_clock_skew/1,
    rate_setting_reaches_every_node_and_survives_restart/1,
    run_finishes_before_its_copies/1,
    dead_man_counts_fresh_copies_only/1,
    retention_runs_on_every_core/1,
    copies_never_push_out_newer_backups/1
]).

%% Saturday 2026-11-28 00:00:00 UTC; the schedule fires every minute.
-define(T0, 1795824000000).
-define(MINUTE, 60000).
-define(H, emqx_guard_cluster_helper).

-import(emqx_guard_cluster_helper, [
    names/1, peer_node/1, stop_started/0, peer_call/4, fire_one/2, export_counts/1, status/1, settings/1,
    keep/1, ctl/2, same_backups/3, wait_until/1
]).

all() ->
    [
        one_scheduler_for_the_cluster,
        contended_instant_is_skipped,
        responsible_dies_during_its_run,
        copies_stream_verify_and_clean_up,
        partial_copy_is_cleared_at_start,
        pushed_password_is_never_logged,
        settings_survive_clock_skew,
        rate_setting_reaches_every_node_and_survives_restart,
        run_finishes_before_its_copies,
        dead_man_counts_fresh_copies_only,
        retention_runs_on_every_core,
        copies_never_push_out_newer_backups,
        restore_refused_while_nodes_run_another_minor
    ].

init_per_suite(Config) ->
    case try emqx_guard_nif:validate(<<"* * * * *">>) catch C:R -> {C, R} end of
        {ok, _} -> Config;
        Other -> ct:fail({nif_not_usable, Other})
    end.

end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% 50 fires give exactly one export each, on the lowest running core node; stopping it moves
%% later fires to the other core; settings changed on one node reach the others and a node that
%% comes back; every backup ends up on both cores with equal sha256, none on the replicant.
one_scheduler_for_the_cluster(Config) ->
    [A, B, R, Late] = names(["core_a", "core_b", "replicant", "replicant_late"]),
    #{A := PA, B := PB, R := PR} = start_cluster([{A, core}, {B, core}, {R, replicant}], Config),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        ?assertEqual([NA, NB], peer:call(PR, emqx_guard_cores, running, [])),

        %% a setting changed on the core that does not export reaches every node at once
        Out = ctl(PB, ["backup_keep", "60"]),
        ?assertEqual(["backup_keep = 60"], Out),
        [?assertEqual(60, keep(P)) || P <- [PA, PB, PR]],

        %% fires 1..20: core_a (lowest core) exports each, the others skip naming it
        fires(1, 20, [PA, PB, PR]),
        ?assertEqual([20, 0, 0], export_counts([PA, PB, PR])),
        #{counts := #{ok := 20, skipped := 0}} = status(PA),
        #{counts := #{ok := 0, skipped := 20}, last_skip := #{responsible := NA}} = status(PB),
        #{counts := #{ok := 0, skipped := 20}, last_skip := #{responsible := NA}} = status(PR),
        same_backups(PA, PB, 20),
        ?assertEqual(#{}, peer_call(PR, ?H, peer_backups, [])),
        %% the copies core_b received count as fresh backups for its dead-man watch (it takes
        %% over exporting if core_a goes away), so it would not warn of a silence: the newest
        %% one, made at the 20th fire (the peers' clock)
        #{last_success := SeenOnB} = peer:call(PB, emqx_guard_notify, status, []),
        ?assertEqual(?T0 + 20 * ?MINUTE, SeenOnB),

        %% status on the replicant shows every node's backups and the last copy to each
        Status = ctl(PR, ["backup_status"]),
        ct:pal("backup_status on the replicant:~n~ts", [lists:join("\n", Status)]),
        ?assert(lists:member(
            "cluster: 3 running node(s); " ++ atom_to_list(NA) ++
                " exports scheduled backups (the lowest core node where the plugin works)",
            Status
        ), Status),
        ?assert(lists:member("node " ++ atom_to_list(NA) ++ " (core): 20 backup(s), newest first:", Status), Status),
        ?assert(lists:member("node " ++ atom_to_list(NB) ++ " (core): 20 backup(s), newest first:", Status), Status),
        ?assert(lists:member("node " ++ atom_to_list(peer_node(R)) ++ " (replicant, this node): no backups", Status), Status),
        Newest = lists:max(maps:keys(peer_call(PB, ?H, peer_backups, []))),
        ?assert(lists:any(
            fun(L) -> lists:prefix("  last copy to it: ok, " ++ Newest ++ " from " ++ atom_to_list(NA), L) end, Status
        ), Status),

        %% the exporting core goes away: later fires are exported by core_b
        ok = peer:stop(PA),
        wait_until(fun() -> peer:call(PB, emqx_guard_cores, running, []) =:= [NB] end),
        wait_until(fun() -> peer:call(PR, emqx_guard_cores, running, []) =:= [NB] end),
        fires(21, 35, [PB, PR]),
        ?assertEqual([15, 0], export_counts([PB, PR])),
        #{last_skip := #{responsible := NB}} = status(PR),
        %% a setting changed while core_a is away
        ?assertMatch(["backup_timezone = \"Europe/Berlin\"" | _], ctl(PR, ["backup_timezone", "Europe/Berlin"])),

        %% core_a comes back: it takes over the newer settings and receives the backups it lacks
        #{A := PA2} = start_cluster([{A, core}], Config, ?T0 + 35 * ?MINUTE, [NB, peer_node(R)]),
        wait_until(fun() -> maps:get(backup_timezone, settings(PA2)) =:= <<"Europe/Berlin">> end),
        ?assertEqual(60, keep(PA2)),
        wait_until(fun() -> map_size(peer_call(PA2, ?H, peer_backups, [])) =:= 35 end),
        same_backups(PA2, PB, 35),

        %% a node that joins for the first time takes over the settings too, and holds no backups
        #{Late := PL} = start_cluster([{Late, replicant}], Config, ?T0 + 35 * ?MINUTE, [peer_node(A), NB, peer_node(R)]),
        wait_until(fun() -> settings(PL) =:= settings(PB) end),
        ?assertEqual(<<"Europe/Berlin">>, maps:get(backup_timezone, settings(PL))),

        %% core_a is the lowest core again, so fires 36..50 are its own
        fires(36, 50, [PA2, PB, PR, PL]),
        ?assertEqual([15, 15, 0, 0], export_counts([PA2, PB, PR, PL])),
        ?assertEqual(#{}, peer_call(PL, ?H, peer_backups, [])),
        %% 20 + 15 + 15: exactly one export per fire (fires/3 checks each fire on its own)
        same_backups(PA2, PB, 50),
        ?assertEqual(#{}, peer_call(PR, ?H, peer_backups, []))
    after
        stop_started()
    end.

%% A fire whose instant's lock is held elsewhere is skipped, not waited for and not doubled.
contended_instant_is_skipped(Config) ->
    [A, B] = names(["lock_a", "lock_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        Instant = ?T0 + ?MINUTE,
        Holder = peer_call(PB, ?H, peer_hold_lock, [{emqx_guard_backup, Instant}, [NA, NB]]),
        ?assert(is_pid(Holder)),
        fire_one(Instant, [PA, PB]),
        ?assertEqual([0, 0], export_counts([PA, PB])),
        #{last_skip := #{reason := lock_held}, counts := #{skipped := 1}} = status(PA),
        true = peer:call(PB, erlang, exit, [Holder, kill]),
        %% the next instant is exported as usual
        fire_one(Instant + ?MINUTE, [PA, PB]),
        ?assertEqual([1, 0], export_counts([PA, PB])),
        same_backups(PA, PB, 1),
        %% an instant some core node already knows to be exported is not exported again
        Third = Instant + 2 * ?MINUTE,
        ok = peer_call(PB, emqx_guard_election, note_exported, [Third]),
        fire_one(Third, [PA, PB]),
        ?assertEqual([1, 0], export_counts([PA, PB])),
        #{last_skip := #{reason := already_exported}} = status(PA),
        %% an instant far in the future recorded as exported (a core with a fast clock) blocks
        %% no earlier one, also after the cluster server restarts
        Future = Instant + 365 * 24 * 60 * ?MINUTE,
        ok = peer_call(PB, emqx_guard_election, note_exported, [Future]),
        ok = peer_call(PA, emqx_guard_election, note_exported, [Future]),
        [restart_copies_server(P) || P <- [PA, PB]],
        ?assert(peer_call(PB, emqx_guard_election, was_exported, [Third])),
        ?assert(peer_call(PA, emqx_guard_election, was_exported, [Future])),
        fire_one(Third + ?MINUTE, [PA, PB]),
        ?assertEqual([2, 0], export_counts([PA, PB])),
        #{last_run := #{result := ok, instant := Fourth}} = status(PA),
        ?assertEqual(Third + ?MINUTE, Fourth)
    after
        stop_started()
    end.

%% The responsible node dies while it exports: that instant is not exported again elsewhere, the
%% next fire is exported by the other core.
responsible_dies_during_its_run(Config) ->
    [A, B] = names(["dying_a", "dying_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        ok = peer_call(PA, emqx_mgmt_data_backup, set_mode, [{hang, 600000}]),
        First = ?T0 + ?MINUTE,
        [ok = peer_call(P, ?H, peer_fire, [First]) || P <- [PA, PB]],
        wait_until(fun() -> peer_call(PA, emqx_mgmt_data_backup, export_count, []) =:= 1 end),
        wait_until(fun() -> peer_call(PB, ?H, peer_idle, []) end),
        ok = peer:stop(PA),
        wait_until(fun() -> peer:call(PB, emqx_guard_cores, running, []) =:= [NB] end),
        #{counts := #{skipped := 1, ok := 0}} = status(PB),
        fire_one(First + ?MINUTE, [PB]),
        ?assertEqual([1], export_counts([PB])),
        #{last_run := #{result := ok, instant := Second}} = status(PB),
        ?assertEqual(First + ?MINUTE, Second),
        ?assertEqual(1, map_size(peer_call(PB, ?H, peer_backups, [])))
    after
        stop_started()
    end.

%% A backup larger than many chunks is streamed to the other node, verified there, made private
%% and renamed into place; a copy that does not match the sender's sha256 leaves nothing behind.
copies_stream_verify_and_clean_up(Config) ->
    [A, B] = names(["copy_a", "copy_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        Base = "emqx-export-2026-11-27-23-59-00.000",
        Dir = filename:join([?config(priv_dir, Config), A, "backup"]),
        Path = list_to_binary(filename:join(Dir, Base ++ ".tar.gz")),
        %% 3 MiB of random bytes: incompressible, so the tarball spans many chunks
        ok = big_export(Path, Base, 3 * 1024 * 1024),
        {ok, #{result := ok, sha256 := Sha}} = peer_call(PA, emqx_guard_backups, check, [Path, off, 60000]),
        %% its plugins companion, as the run makes it beside the export
        {ok, #{file := Companion}} = peer_call(PA, emqx_guard_companion, make, [Path]),
        Report = #{path => Path, file => list_to_binary(Base ++ ".tar.gz"), sha256 => Sha},
        ?assertEqual([{NB, ok}], peer_call(PA, emqx_guard_replica, replicate, [Report, 5, [NB]])),
        same_backups_bytes(PA, PB, Base ++ ".tar.gz"),
        %% the companion followed it, byte for byte, private; it is no copy of its own
        {ok, Sent} = file:read_file(filename:join(Dir, Companion)),
        Arrived = filename:join([?config(priv_dir, Config), B, "backup", Companion]),
        ?assertEqual({ok, Sent}, file:read_file(Arrived)),
        {ok, #file_info{mode = CompanionMode}} = file:read_file_info(Arrived),
        ?assertEqual(8#600, CompanionMode band 8#777),
        %% again: the same file is already there, nothing is sent
        ?assertEqual([{NB, ok}], peer_call(PA, emqx_guard_replica, replicate, [Report, 5, [NB]])),
        #{NB := #{result := ok, file := File}} = peer_call(PA, emqx_guard_copies, results, []),
        ?assertEqual(list_to_binary(Base ++ ".tar.gz"), File),

        %% the same name with a sha256 the copy cannot match: refused, nothing left behind
        Other = "emqx-export-2026-11-27-23-58-00.000",
        OtherPath = list_to_binary(filename:join(Dir, Other ++ ".tar.gz")),
        ok = big_export(OtherPath, Other, 300 * 1024),
        Wrong = Report#{path => OtherPath, file => list_to_binary(Other ++ ".tar.gz"), sha256 => binary:copy(<<"0">>, 64)},
        [{NB, {error, Why}}] = peer_call(PA, emqx_guard_replica, replicate, [Wrong, 5, [NB]]),
        WhyLine = peer_call(PA, emqx_guard_outcome, format_error, [Why]),
        ?assertMatch({match, _}, re:run(WhyLine, "sha256 differs"), WhyLine),
        ?assertEqual([Base ++ ".tar.gz"], maps:keys(peer_call(PB, ?H, peer_backups, []))),
        Incoming = filename:join([?config(priv_dir, Config), B, "backup", ".emqx_guard_incoming"]),
        ?assertEqual({ok, []}, file:list_dir(Incoming)),
        #{NB := #{result := {error, _}}} = peer_call(PA, emqx_guard_copies, results, [])
    after
        stop_started()
    end.

%% A node that died mid-copy left a partial tarball in its incoming directory: it is deleted when
%% the plugin starts there again.
partial_copy_is_cleared_at_start(Config) ->
    [A] = names(["partial_a"]),
    Incoming = filename:join([?config(priv_dir, Config), A, "backup", ".emqx_guard_incoming"]),
    Partial = filename:join([Incoming, "17", "emqx-export-2026-11-27-23-59-00.000.tar.gz"]),
    ok = filelib:ensure_dir(Partial),
    ok = file:write_file(Partial, crypto:strong_rand_bytes(1000)),
    #{A := PA} = start_cluster([{A, core}], Config),
    try
        ?assertNot(filelib:is_file(Partial)),
        ?assertNot(filelib:is_dir(Incoming)),
        ?assertEqual(#{}, peer_call(PA, ?H, peer_backups, []))
    after
        stop_started()
    end.

%% A node adopting pushed settings logs only what changed, with the SMTP password hidden; the
%% cluster server's crash reports and status hide it too.
pushed_password_is_never_logged(Config) ->
    [A, B] = names(["secret_a", "secret_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        ok = peer_call(PB, ?H, peer_capture_logs, []),
        Secret = <<"s3cret-Pa55word">>,
        %% with the user it belongs to (a password alone is half a channel, refused)
        {ok, _, []} = peer_call(PA, emqx_guard_settings_sync, update, [#{notify_smtp_user => <<"ops">>, notify_smtp_password => Secret}]),
        ?assertEqual(Secret, maps:get(notify_smtp_password, settings(PB))),
        Events = peer_call(PB, ?H, peer_captured_logs, []),
        [Adopted] = [R || #{msg := {report, R = #{msg := emqx_guard_settings_adopted}}} <- Events],
        ?assertEqual(#{notify_smtp_user => <<"ops">>, notify_smtp_password => <<"******">>}, maps:get(changed, Adopted)),
        ?assertEqual(nomatch, string:find(io_lib:format("~tp", [Events]), Secret)),

        %% what a crash report would show of the last message, and sys:get_status
        Msg = {'$gen_call', {self(), make_ref()}, {adopt, (settings(PB))#{notify_smtp_password => Secret}, {1, node()}}},
        Shown = emqx_guard_settings_sync:format_status(#{message => Msg, reason => crash, log => [{in, Msg}]}),
        ?assertEqual(nomatch, string:find(io_lib:format("~tp", [Shown]), Secret)),
        {'$gen_call', _, {adopt, #{notify_smtp_password := <<"******">>}, {1, _}}} = maps:get(message, Shown),
        StatusText = io_lib:format("~tp", [peer_call(PB, sys, get_status, [emqx_guard_settings_sync])]),
        ?assertEqual(nomatch, string:find(StatusText, Secret)),

        %% the off-site destination set on core_a reaches core_b, its secret key hidden there too
        RemoteSecret = "s3-Remote/Secret+key",
        ?assertMatch(["backup_remote = s3" | _],
                     ctl(PA, ["backup_remote", "s3", "bucket=b", "access_key=a", "secret_key=" ++ RemoteSecret,
                              "endpoint=http://127.0.0.1:9", "path_style=on"])),
        ?assertEqual(list_to_binary(RemoteSecret), maps:get(backup_remote_secret_key, settings(PB))),
        ?assertEqual(<<"b">>, maps:get(backup_remote_bucket, settings(PB))),
        Events2 = peer_call(PB, ?H, peer_captured_logs, []),
        [Adopted2 | _] = lists:reverse([R || #{msg := {report, R = #{msg := emqx_guard_settings_adopted}}} <- Events2]),
        ?assertMatch(#{backup_remote_secret_key := <<"******">>, backup_remote_type := <<"s3">>}, maps:get(changed, Adopted2)),
        ?assertEqual(nomatch, string:find(io_lib:format("~tp", [Events2]), RemoteSecret)),
        ?assert(lists:member("  secret_key = \"******\"", ctl(PB, ["backup_remote"])))
    after
        stop_started()
    end.

%% core_b's clock is an hour behind. A dashboard change (applied on every node by EMQX) leaves the
%% same settings everywhere; a later change typed on core_b reaches core_a and is not undone
%% when the nodes sync. A node holding newer, other settings refuses an older push (stale).
settings_survive_clock_skew(Config) ->
    [A, B] = names(["skew_a", "skew_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        ok = ?H:set_cluster_offset(PB, -3600000),
        %% the dashboard: every node applies the same change itself
        [{ok, _} = peer_call(P, emqx_guard_settings_sync, update_local, [#{backup_keep => 7}]) || P <- [PA, PB]],
        ?assertEqual([7, 7], [keep(P) || P <- [PA, PB]]),
        %% later, on the node whose clock is behind
        ?assertEqual(["backup_keep = 9"], ctl(PB, ["backup_keep", "9"])),
        ?assertEqual([9, 9], [keep(P) || P <- [PA, PB]]),
        [_ = peer_call(P, emqx_guard_settings_sync, sync, []) || P <- [PA, PB]],
        ?assertEqual([9, 9], [keep(P) || P <- [PA, PB]]),
        %% a push older than what a node holds: refused, and said so; the same settings: fine
        Old = (settings(PA))#{backup_keep => 3},
        ?assertEqual({error, stale}, peer_call(PA, emqx_guard_settings_sync, adopt, [Old, {1, NB}])),
        ?assertEqual(ok, peer_call(PA, emqx_guard_settings_sync, adopt, [settings(PA), {1, NB}])),
        ?assertEqual(9, keep(PA))
    after
        stop_started()
    end.

%% A read rate (stored as a number of bytes per second) reaches the other node with the change,
%% does not stop later changes from reaching it, is taken over by a node that joins, and survives
%% a restart of the plugin without falling back to its default (issue 19, defect 1).
rate_setting_reaches_every_node_and_survives_restart(Config) ->
    [A, B, Late] = names(["rate_a", "rate_b", "rate_late"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        ?assertEqual(["backup_io_limit = \"50MB/s\""], ctl(PA, ["backup_io_limit", "50MB/s"])),
        ?assertEqual([50000000, 50000000], [maps:get(backup_io_limit, settings(P)) || P <- [PA, PB]]),
        %% a later change is taken by every node: the settings holding the rate are adopted whole
        ?assertEqual(["backup_keep = 4"], ctl(PA, ["backup_keep", "4"])),
        ?assertEqual([4, 4], [keep(P) || P <- [PA, PB]]),
        %% a node that joins takes the settings over, the rate with them
        #{Late := PL} = start_cluster([{Late, replicant}], Config, ?T0, [peer_node(A), peer_node(B)]),
        wait_until(fun() -> settings(PL) =:= settings(PA) end),
        ?assertEqual(50000000, maps:get(backup_io_limit, settings(PL))),
        %% the plugin restarts on core_b: the rate is read back from its settings file
        ok = peer_call(PB, application, stop, [emqx_guard]),
        ok = peer_call(PB, ?H, peer_capture_logs, []),
        {ok, _} = peer_call(PB, application, ensure_all_started, [emqx_guard]),
        ?assertEqual(["backup_io_limit = \"50MB/s\""], ctl(PB, ["backup_io_limit"])),
        Events = peer_call(PB, ?H, peer_captured_logs, []),
        ?assertEqual([], [R || #{msg := {report, R = #{msg := emqx_guard_setting_damaged}}} <- Events])
    after
        stop_started()
    end.

%% The run (export, verify, prune) finishes, and reports, while its copy to a core node that
%% cannot take it yet still waits; the copy completes afterwards and shows in the copy results.
run_finishes_before_its_copies(Config) ->
    [A, B] = names(["async_a", "async_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        %% core_b's file server stops answering: a copy to it cannot even start
        ok = peer_call(PB, sys, suspend, [file_server_2]),
        Instant = ?T0 + ?MINUTE,
        ok = peer_call(PA, ?H, peer_fire, [Instant]),
        wait_until(fun() -> peer_call(PA, ?H, peer_run_idle, []) end),
        #{last_run := #{result := ok, instant := Instant}} = status(PA),
        ?assert(peer_call(PA, emqx_guard_copies, busy, [])),
        ?assertEqual(error, maps:find(NB, peer_call(PA, emqx_guard_copies, results, []))),
        ok = peer_call(PB, sys, resume, [file_server_2]),
        wait_until(fun() -> not peer_call(PA, emqx_guard_copies, busy, []) end),
        %% the waiting copy, or core_b's own catch-up when it syncs first after resuming: either
        %% way the backup reached it (the replicate path itself is covered by the other cases)
        #{NB := #{result := ok, kind := Kind}} = peer_call(PA, emqx_guard_copies, results, []),
        ?assert(lists:member(Kind, [replicate, catch_up]), Kind),
        same_backups(PA, PB, 1)
    after
        stop_started()
    end.

%% The dead-man watch of a core that receives copies counts a fresh backup as of when it was
%% made (not when its copy arrived); coming back, it counts the cluster's newest backup as of
%% when it was made, not the arrival of the older backups it fetches.
dead_man_counts_fresh_copies_only(Config) ->
    [A, B] = names(["deadman_a", "deadman_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        %% the export takes 300 ms: its copy arrives at least that long after the run started
        ok = peer_call(PA, emqx_mgmt_data_backup, set_mode, [{hang, 300}]),
        fire_one(?T0 + ?MINUTE, [PA, PB]),
        #{NB := #{kind := replicate, result := ok, created := Created, at := Arrived}} =
            peer_call(PB, emqx_guard_copies, results, []),
        ?assert(Created + 300 =< Arrived, {Created, Arrived}),
        #{last_success := Seen} = peer_call(PB, emqx_guard_notify, status, []),
        ?assertEqual(Created, Seen),

        %% core_b is away for two fires, then fetches them: catch-up copies
        ok = peer_call(PA, emqx_mgmt_data_backup, set_mode, [ok]),
        ok = peer:stop(PB),
        wait_until(fun() -> peer:call(PA, emqx_guard_cores, running, []) =:= [NA] end),
        fires(2, 3, [PA]),
        #{B := PB2} = start_cluster([{B, core}], Config, ?T0 + 3 * ?MINUTE, [NA]),
        wait_until(fun() -> map_size(peer_call(PB2, ?H, peer_backups, [])) =:= 3 end),
        Newest = list_to_binary(lists:max(maps:keys(peer_call(PA, ?H, peer_backups, [])))),
        wait_until(fun() ->
            case peer_call(PB2, emqx_guard_copies, results, []) of
                #{NB := #{file := Newest, result := ok}} -> true;
                _ -> false
            end
        end),
        #{NB := #{kind := catch_up}} = peer_call(PB2, emqx_guard_copies, results, []),
        same_backups(PA, PB2, 3),
        %% back, it knows the cluster's newest backup (core_a tells it at its start) as of when
        %% it was made, not as of when the catch-up copies arrived
        #{last_run := #{result := ok, started_at := MadeAt}} = status(PA),
        ?assert(MadeAt > Seen),
        wait_until(fun() -> maps:get(last_success, peer_call(PB2, emqx_guard_notify, status, [])) =:= MadeAt end)
    after
        stop_started()
    end.

%% With fewer backups kept than fires, both cores end with exactly Keep backups, the same newest
%% ones (retention runs where the copies arrive too); a core that lost its disk fetches only the
%% cluster's newest Keep.
retention_runs_on_every_core(Config) ->
    [A, B] = names(["keep_a", "keep_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        ?assertEqual(["backup_keep = 3"], ctl(PA, ["backup_keep", "3"])),
        Exported = lists:append([
            begin
                fire_one(?T0 + I * ?MINUTE, [PA, PB]),
                [lists:max(maps:keys(peer_call(PA, ?H, peer_backups, [])))]
            end
         || I <- lists:seq(1, 6)
        ]),
        ?assertEqual([6, 0], export_counts([PA, PB])),
        ?assertEqual(6, length(lists:usort(Exported))),
        same_backups(PA, PB, 3),
        ?assertEqual(lists:nthtail(3, Exported), lists:sort(maps:keys(peer_call(PB, ?H, peer_backups, [])))),

        %% five kept, two more fires: both hold the newest five
        ?assertEqual(["backup_keep = 5"], ctl(PB, ["backup_keep", "5"])),
        fire_one(?T0 + 7 * ?MINUTE, [PA, PB]),
        fire_one(?T0 + 8 * ?MINUTE, [PA, PB]),
        same_backups(PA, PB, 5),
        Five = lists:sort(maps:keys(peer_call(PA, ?H, peer_backups, []))),

        %% core_b loses its disk; a catch-up keeping two fetches the newest two only
        DirB = filename:join([?config(priv_dir, Config), B, "backup"]),
        [ok = file:delete(filename:join(DirB, N)) || N <- Five],
        Fetched = peer_call(PB, emqx_guard_copies, catch_up, [2]),
        Newest2 = [list_to_binary(N) || N <- lists:nthtail(3, Five)],
        ?assertEqual([{N, ok} || N <- Newest2], Fetched),
        ?assertEqual(lists:nthtail(3, Five), lists:sort(maps:keys(peer_call(PB, ?H, peer_backups, []))))
    after
        stop_started()
    end.

%% A copy of an OLDER backup arriving on a core never costs it a newer backup (issue 19, defect
%% 4), through the real copy path (`emqx_guard_replica', retention where the copy lands, the real
%% NIF). Keep 1: core_b exported a backup of its own while core_a copies an older one over: both
%% stay (the copy is protected, the newer one is the newest verified). Keep 2: a late catch-up copy
%% of an even older backup arrives: the two newest stay, the copy too (protection makes the kept
%% set one larger, it never displaces a newer verified backup); the next retention there trims the
%% set back to the newest two.
copies_never_push_out_newer_backups(Config) ->
    [A, B] = names(["older_a", "older_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        %% the older backups are sent from outside core_a's backup dir (its own retention stays
        %% out of the way)
        DirA = filename:join([?config(priv_dir, Config), A, "elsewhere"]),
        %% core_b's own backup, exported now (its name carries today's date, later than the copies')
        ?assertEqual(["backup_keep = 1"], ctl(PB, ["backup_keep", "1"])),
        [_ | _] = ctl(PB, ["backup_now"]),
        wait_until(fun() -> peer_call(PB, ?H, peer_idle, []) end),
        [Own] = maps:keys(peer_call(PB, ?H, peer_backups, [])),
        Copy = fun(Base, Keep) ->
            Path = list_to_binary(filename:join(DirA, Base ++ ".tar.gz")),
            ok = big_export(Path, Base, 1024),
            {ok, #{result := ok, sha256 := Sha}} = peer_call(PA, emqx_guard_backups, check, [Path, off, 60000]),
            Report = #{path => Path, file => filename:basename(Path), sha256 => Sha},
            ?assertEqual([{NB, ok}], peer_call(PA, emqx_guard_replica, replicate, [Report, Keep, [NB]])),
            Base ++ ".tar.gz"
        end,
        %% keep 1: the older copy lands, core_b's newer backup stays
        Older = Copy("emqx-export-2026-11-28-00-01-00.000", 1),
        ?assert(Older < Own, {Older, Own}),
        ?assertEqual(lists:sort([Own, Older]), lists:sort(maps:keys(peer_call(PB, ?H, peer_backups, [])))),

        %% keep 2 on core_b, then a late catch-up copy of an even older backup
        ?assertEqual(["backup_keep = 2"], ctl(PB, ["backup_keep", "2"])),
        Oldest = Copy("emqx-export-2026-11-27-00-01-00.000", 2),
        ?assertEqual(
            lists:sort([Own, Older, Oldest]),
            lists:sort(maps:keys(peer_call(PB, ?H, peer_backups, [])))
        ),
        %% the next retention there (nothing protected) keeps the newest two
        ?assertMatch({ok, #{pruned := [_]}}, peer_call(PB, emqx_guard_backups, prune, [filename:join([?config(priv_dir, Config), B, "backup"]), 2, undefined])),
        ?assertEqual(lists:sort([Own, Older]), lists:sort(maps:keys(peer_call(PB, ?H, peer_backups, []))))
    after
        stop_started()
    end.

%% An export in EMQX's layout (files only, one top directory named as the file) with a big table.
big_export(Path, Base, Bytes) ->
    ok = filelib:ensure_dir(Path),
    {ok, Tar} = erl_tar:open(binary_to_list(Path), [write, compressed]),
    ok = erl_tar:add(Tar, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Tar, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:add(Tar, crypto:strong_rand_bytes(Bytes), Base ++ "/mnesia/emqx_admin", []),
    erl_tar:close(Tar).

same_backups_bytes(P1, P2, Name) ->
    #{Name := Fact1} = peer_call(P1, ?H, peer_backups, []),
    #{Name := {_, Mode} = Fact2} = peer_call(P2, ?H, peer_backups, []),
    ?assertEqual(element(1, Fact1), element(1, Fact2)),
    ?assertEqual(8#600, Mode).

%%--------------------------------------------------------------------
%% Helpers (test node)
%%--------------------------------------------------------------------

start_cluster(Specs, Config) ->
    ?H:start_cluster(Specs, Config, ?T0, []).

start_cluster(Specs, Config, Now, Join) ->
    ?H:start_cluster(Specs, Config, Now, Join).

restart_copies_server(Peer) ->
    ok = peer_call(Peer, supervisor, terminate_child, [emqx_guard_sup, emqx_guard_copies]),
    {ok, _} = peer_call(Peer, supervisor, restart_child, [emqx_guard_sup, emqx_guard_copies]),
    ok.

fires(First, Last, Peers) ->
    ?H:fires(?T0, First, Last, Peers).

%% EMQX 6.3.1 imports only while every running node runs 6.3: a restore on such a node while the
%% other core runs 6.2.4 is refused in its preflight (each node's release asked through the
%% protocol), naming the other node, before any safety backup; once both run 6.3 it goes.
restore_refused_while_nodes_run_another_minor(Config) ->
    [A, B] = names(["minor_a", "minor_b"]),
    #{A := PA, B := PB} = start_cluster([{A, core}, {B, core}], Config),
    try
        NB = peer_node(B),
        ok = peer_call(PA, emqx_release, set, ["6.3.1", ce]),
        ok = peer_call(PB, emqx_release, set, ["6.2.4", ce]),
        {ok, #{file := Name}} = peer_call(PA, emqx_guard_scheduler, run_now, []),
        Before = peer_call(PA, ?H, peer_backups, []),
        {error, {restore_refused, {mixed_versions, #{others := [{NB, <<"6.2.4">>}]}}} = Refused} =
            peer_call(PA, emqx_guard_restore, restore, [Name, #{}]),
        Line = peer_call(PA, emqx_guard_outcome, format_error, [element(2, Refused)]),
        ?assertNotEqual(nomatch, binary:match(Line, atom_to_binary(NB)), Line),
        ?assertEqual(Before, peer_call(PA, ?H, peer_backups, [])),
        ?assertEqual(0, peer_call(PA, emqx_mgmt_data_backup, import_count, [])),
        ok = peer_call(PB, emqx_release, set, ["6.3.2", ce]),
        ?assertMatch({ok, #{<<"result">> := <<"dry_run">>}}, peer_call(PA, emqx_guard_restore, restore, [Name, #{dry_run => true}]))
    after
        stop_started()
    end.
