%% Common Test suite: a cluster in the middle of a rolling upgrade (issue 20 §1). Real `peer'
%% nodes (`emqx_guard_cluster_helper'), one of them speaking another protocol version between
%% nodes through the `proto_versions' switch of `emqx_guard_proto': `none' plays the plugin
%% 0.1.0 (announces nothing, speaks version 1 only), `[3]' a release with no version in common.
%% Copies, settings and the election keep working with the older node, each side using the
%% version both speak; the node with no common version is shown as a version mismatch, skipped
%% by every job, and nobody crashes.
-module(emqx_guard_mixed_versions_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([
    older_release_keeps_copies_settings_and_election/1,
    release_0_1_0_keeps_copies_settings_and_election/1,
    no_common_version_is_skipped/1
]).

%% Saturday 2026-11-28 00:00:00 UTC; the schedule fires every minute.
-define(T0, 1795824000000).
-define(MINUTE, 60000).
-define(H, emqx_guard_cluster_helper).

-import(emqx_guard_cluster_helper, [
    names/1, peer_node/1, stop_started/0, peer_call/4, export_counts/1, status/1, settings/1, keep/1, ctl/2,
    same_backups/3, wait_until/1
]).

all() ->
    [
        older_release_keeps_copies_settings_and_election,
        release_0_1_0_keeps_copies_settings_and_election,
        no_common_version_is_skipped
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

%% Three cores, the middle one on 0.1.0. While the lowest (new) core runs, it exports and the
%% old one skips, receives the copies and takes the settings in the shape of 0.1.0 (its keys
%% only); with the lowest core gone, the old one is the lowest: it exports (0.1.0's rule, which
%% the new core follows with version 1 calls, no candidacy) and copies to the new core; the
%% lowest core comes back and fetches what it missed, also from the old node, and takes over the
%% settings changed meanwhile.
older_release_keeps_copies_settings_and_election(Config) ->
    older_release(Config, #{proto => none}).

%% The same with the plugin 0.1.0 itself on the old node: its code and NIF library from the
%% directory named by EMQX_GUARD_RELEASE_0_1_0 (`ebin', `priv'; `make test-release-0.1.0' builds it
%% from the release's commit). Skipped without it.
release_0_1_0_keeps_copies_settings_and_election(Config) ->
    case os:getenv("EMQX_GUARD_RELEASE_0_1_0") of
        Dir when is_list(Dir), Dir =/= "" -> older_release(Config, #{code => Dir});
        _ -> {skip, "EMQX_GUARD_RELEASE_0_1_0 is not set (make test-release-0.1.0 builds that release and runs this suite with it)"}
    end.

older_release(Config, OldNode) ->
    [A, B, C] = names(["mixed_a", "mixed_b_old", "mixed_c"]),
    #{A := PA, B := PB, C := PC} = start_cluster([{A, core}, {B, core, OldNode}, {C, core}], Config),
    try
        [NA, NB, NC] = [peer_node(N) || N <- [A, B, C]],
        case OldNode of
            #{code := Dir} ->
                %% the old node runs that release: no protocol module, its code from Dir
                ?assertEqual(non_existing, peer_call(PB, code, which, [emqx_guard_proto])),
                ?assert(lists:prefix(Dir, peer_call(PB, code, which, [emqx_guard_election])));
            #{} ->
                ok
        end,
        %% version 1 with the old node, version 2 between the new ones
        ?assertEqual(#{NB => 1, NC => 2}, peer_call(PA, emqx_guard_proto, negotiate, [[NB, NC]])),

        %% the lowest core exports; the old core skips it by 0.1.0's rule, the new one by the survey
        fires(1, 3, [PA, PB, PC]),
        ?assertEqual([3, 0, 0], export_counts([PA, PB, PC])),
        [#{last_skip := #{responsible := NA}} = status(P) || P <- [PB, PC]],
        same_backups(PA, PB, 3),
        same_backups(PA, PC, 3),

        %% a change on a new core: every key reaches the new one, the keys of 0.1.0 the old one
        ?assertEqual(["backup_keep = 7"], ctl(PC, ["backup_keep", "7"])),
        _ = ctl(PC, ["notify_on", "offsite_ok=off"]),
        [?assertEqual(7, keep(P)) || P <- [PA, PB, PC]],
        ?assertEqual(false, maps:get(notify_on_offsite_ok, settings(PA))),
        ?assertNotEqual({ok, false}, maps:find(notify_on_offsite_ok, settings(PB))),
        %% a change on the old core, in its shape: taken everywhere, the newer keys kept
        ?assertEqual(["backup_keep = 9"], ctl(PB, ["backup_keep", "9"])),
        [?assertEqual(9, keep(P)) || P <- [PA, PB, PC]],
        [?assertEqual(false, maps:get(notify_on_offsite_ok, settings(P))) || P <- [PA, PC]],

        %% every node's status: the old node answers the cluster view in version 1
        Status = ctl(PC, ["backup_status"]),
        ct:pal("backup_status on the new core:~n~ts", [lists:join("\n", Status)]),
        ?assert(lists:member(
            "cluster: 3 running node(s); " ++ atom_to_list(NA) ++
                " exports scheduled backups (" ++ atom_to_list(NB) ++ ": an older plugin version (protocol 1), "
                "which exports only as the lowest core node (" ++ atom_to_list(NA) ++ "))",
            Status
        ), Status),
        ?assert(lists:member("node " ++ atom_to_list(NB) ++ " (core): 3 backup(s), newest first:", Status), Status),

        %% the lowest core goes away: the old core is the lowest, exports and copies in version 1
        ok = peer:stop(PA),
        [wait_until(fun() -> running_cores(P) =:= [NB, NC] end) || P <- [PB, PC]],
        fires(4, 5, [PB, PC]),
        ?assertEqual([2, 0], export_counts([PB, PC])),
        #{last_skip := #{responsible := NB}} = status(PC),
        same_backups(PB, PC, 5),
        ?assertMatch(["backup_timezone = \"Europe/Berlin\"" | _], ctl(PB, ["backup_timezone", "Europe/Berlin"])),

        %% it comes back: catch-up (also from the old node) and the settings changed meanwhile
        #{A := PA2} = ?H:start_cluster([{A, core}], Config, ?T0 + 5 * ?MINUTE, [NB, NC]),
        wait_until(fun() -> maps:get(backup_timezone, settings(PA2)) =:= <<"Europe/Berlin">> end),
        wait_until(fun() -> map_size(peer_call(PA2, ?H, peer_backups, [])) =:= 5 end),
        same_backups(PA2, PB, 5),
        %% the lowest core again: it exports, the old one skips
        fires(6, 6, [PA2, PB, PC]),
        ?assertEqual([1, 2, 0], export_counts([PA2, PB, PC])),
        same_backups(PA2, PB, 6),
        same_backups(PA2, PC, 6)
    after
        stop_started()
    end.

%% Two cores of this release and a third speaking only version 3: it is never called, shown as a
%% version mismatch with its versions, gets no copies and no settings (the change says it was not
%% applied there), and it takes none either; the lowest core exports every instant once (the odd
%% node leaves it to the lowest core, the one rule both sides share). No process crashes.
no_common_version_is_skipped(Config) ->
    [A, B, C] = names(["match_a", "match_b", "odd_c"]),
    #{A := PA, B := PB, C := PC} = start_cluster([{A, core}, {B, core}, {C, core, #{proto => [3]}}], Config),
    try
        [NA, NB, NC] = [peer_node(N) || N <- [A, B, C]],
        Children = [children(P) || P <- [PA, PB, PC]],
        ?assertEqual(#{NB => 2, NC => {version_mismatch, [3], [1, 2]}}, peer_call(PA, emqx_guard_proto, negotiate, [[NB, NC]])),

        fires(1, 2, [PA, PB, PC]),
        ?assertEqual([2, 0, 0], export_counts([PA, PB, PC])),
        [#{last_skip := #{responsible := NA}} = status(P) || P <- [PB, PC]],
        same_backups(PA, PB, 2),
        ?assertEqual(#{}, peer_call(PC, ?H, peer_backups, [])),

        Mismatch = ": version mismatch: it speaks protocol version 3, this node 1, 2",
        Status = ctl(PB, ["backup_status"]),
        ct:pal("backup_status on a matching core:~n~ts", [lists:join("\n", Status)]),
        ?assert(lists:member(
            "cluster: 3 running node(s); " ++ atom_to_list(NA) ++ " exports scheduled backups (" ++ atom_to_list(NC) ++
                Mismatch ++ ")",
            Status
        ), Status),
        ?assert(lists:member("node " ++ atom_to_list(NC) ++ " (core): backups unknown" ++ Mismatch, Status), Status),
        OddStatus = ctl(PC, ["backup_status"]),
        ct:pal("backup_status on the odd core:~n~ts", [lists:join("\n", OddStatus)]),
        Theirs = ": version mismatch: it speaks protocol version 1, 2, this node 3",
        ?assert(lists:member(
            "cluster: 3 running node(s); " ++ atom_to_list(NA) ++ ", the lowest core node, is left to export scheduled "
                "backups (" ++ atom_to_list(NA) ++ Theirs ++ "; " ++ atom_to_list(NB) ++ Theirs ++ ")",
            OddStatus
        ), OddStatus),

        %% settings: not sent to it, said so; its own change reaches nobody
        ?assertEqual(
            ["backup_keep = 8", "Warning: not applied on " ++ atom_to_list(NC) ++ Mismatch ++ "; it does not take settings from this node"],
            ctl(PA, ["backup_keep", "8"])
        ),
        ?assertEqual([8, 8, 5], [keep(P) || P <- [PA, PB, PC]]),
        ?assertEqual(
            ["backup_keep = 3"] ++ ["Warning: not applied on " ++ atom_to_list(N) ++ Theirs ++ "; it does not take settings from this node" || N <- [NA, NB]],
            ctl(PC, ["backup_keep", "3"])
        ),
        ?assertEqual([8, 8, 3], [keep(P) || P <- [PA, PB, PC]]),
        %% a sync (as after a node connects) adopts nothing across the mismatch
        [#{settings := unchanged} = peer_call(P, emqx_guard_settings_sync, sync, []) || P <- [PA, PB, PC]],
        ?assertEqual([8, 8, 3], [keep(P) || P <- [PA, PB, PC]]),
        %% nothing crashed or was restarted anywhere
        ?assertEqual(Children, [children(P) || P <- [PA, PB, PC]])
    after
        stop_started()
    end.

%%--------------------------------------------------------------------
%% Helpers (test node)
%%--------------------------------------------------------------------

start_cluster(Specs, Config) ->
    ?H:start_cluster(Specs, Config, ?T0, []).

fires(First, Last, Peers) ->
    ?H:fires(?T0, First, Last, Peers).

%% The plugin's supervised processes on the peer (a restarted one has a new pid).
children(Peer) ->
    lists:sort([{Id, Pid} || {Id, Pid, _, _} <- peer_call(Peer, supervisor, which_children, [emqx_guard_sup])]).

%% The running core nodes as the plugin on the peer counts them (0.1.0 counted them in its door,
%% `emqx_guard_emqx:running_core_nodes/0'; later releases in `emqx_guard_cores').
running_cores(Peer) ->
    case peer_call(Peer, code, ensure_loaded, [emqx_guard_cores]) of
        {module, _} -> peer_call(Peer, emqx_guard_cores, running, []);
        _ -> peer_call(Peer, emqx_guard_emqx, running_core_nodes, [])
    end.
