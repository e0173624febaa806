%% Common Test suite: what a cluster tells its operator. Real peer nodes (`emqx_guard_cluster_helper':
%% two or three of them, each running the plugin against the stand-ins), a real SMTP server
%% (aiosmtpd) and the webhook receiver (`chat_receiver.py', path `/hook/...') on 127.0.0.1
%% (`emqx_guard_receivers'); every case counts what the receivers really received and reads each
%% node's status, alarms and health.
%%
%% The peers' scheduler clock starts at the current minute (the dead-man watch runs on the OS
%% clock, so a backup made at the fake time is a fresh one for it); fires are handed to the
%% schedulers one instant at a time.
-module(emqx_guard_cluster_notify_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([
    fires_notify_only_from_the_exporter/1,
    stopped_plugin_is_not_elected/1,
    unloaded_nif_is_not_elected/1,
    alarm_and_health_follow_the_cluster/1
]).

-define(H, emqx_guard_cluster_helper).
-define(MINUTE, 60000).
-define(ALARM, emqx_guard_backup_failed).

-import(emqx_guard_cluster_helper, [
    names/1, peer_node/1, stop_started/0, peer_call/4, fire_one/2, export_counts/1, status/1, settings/1,
    ctl/2, same_backups/3, wait_until/1
]).

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [
        fires_notify_only_from_the_exporter,
        stopped_plugin_is_not_elected,
        unloaded_nif_is_not_elected,
        alarm_and_health_follow_the_cluster
    ].

init_per_suite(Config) ->
    %% a missing tool is a failure, not a skip: a run that skips these tests tested nothing
    ?assertNotEqual(false, os:find_executable("python3"), "python3 is needed for the receivers"),
    ?assertEqual("ok\n", os:cmd("python3 -c 'import aiosmtpd; print(\"ok\")' 2>&1"),
        "aiosmtpd is needed: python3 -m pip install aiosmtpd"),
    case try emqx_guard_nif:validate(<<"* * * * *">>) catch C:R -> {C, R} end of
        {ok, _} -> Config;
        Other -> ct:fail({nif_not_usable, Other})
    end.

end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------

%% Issue 18: five scheduled fires in a cluster of two cores and a replicant are exactly five
%% exports, and the receivers get exactly five `backup_ok' messages per channel (success is
%% switched on), all from the exporting node, and nothing else: no FAILED message from the nodes
%% that skipped. Those nodes count the fires as skipped and their status names the node that
%% exported each. Then a failing export on the exporting node: exactly one FAILED message per
%% channel.
fires_notify_only_from_the_exporter(Config) ->
    [A, B, R] = names(["notify_a", "notify_b", "notify_r"]),
    {SmtpPort, MailOut, HookUrl, HookOut, Ports} = receivers(Config),
    T0 = t0(),
    %% the last success known is now: the dead-man watch stays quiet
    #{A := PA, B := PB, R := PR} =
        ?H:start_cluster([{A, core}, {B, core}, {R, replicant}], Config, T0, [], #{last_success => T0}),
    try
        NA = peer_node(A),
        All = [PA, PB, PR],
        %% typed on a node that does not export: reaches every node
        ok = channels(PB, SmtpPort, HookUrl, ["success=on"]),
        [wait_until(fun() -> maps:get(notify_webhook_url, settings(P)) =:= HookUrl end) || P <- All],

        %% a fire a minute in real life: each one's messages are out before the next (a newer
        %% backup_ok replaces one still waiting for its channel, by design)
        [begin
             ?H:fires(T0, I, I, All),
             received_at_least(MailOut, HookOut, I),
             quiet(All)
         end
         || I <- lists:seq(1, 5)],
        ?assertEqual([5, 0, 0], export_counts(All)),
        Mails = emqx_guard_receivers:received(MailOut),
        Hooks = hooks(HookOut),
        ct:pal("mails: ~tp~nwebhooks: ~tp", [[subject(M) || M <- Mails], [event_node(H) || H <- Hooks]]),
        ?assertEqual([], [subject(M) || M <- Mails, contains(subject(M), <<"FAILED">>)]),
        ?assertEqual([], [event_node(H) || H <- Hooks, event(H) =/= <<"backup_ok">>]),
        ?assertEqual(5, length(Mails)),
        ?assertEqual(5, length(Hooks)),
        OkSubject = <<"[emqx_guard] backup OK on ", (atom_to_binary(NA))/binary, ":">>,
        ?assertEqual([true, true, true, true, true], [binary:match(subject(M), OkSubject) =:= {0, byte_size(OkSubject)} || M <- Mails]),
        ?assertEqual(lists:duplicate(5, {<<"backup_ok">>, atom_to_binary(NA)}), [event_node(H) || H <- Hooks]),
        %% the five backups, each one announced once
        Files = lists:sort([maps:get(<<"file">>, doc(H)) || H <- Hooks]),
        ?assertEqual(lists:sort([list_to_binary(F) || F <- maps:keys(?H:backups(PA))]), Files),
        same_backups(PA, PB, 5),

        %% skipped everywhere else: counts, status, the state file
        #{counts := #{ok := 5, failed := 0, skipped := 0}} = status(PA),
        [#{counts := #{ok := 0, failed := 0, skipped := 5}} = status(P) || P <- [PB, PR]],
        [?assertMatch(#{counts := #{ok := 0, failed := 0, skipped := 5}}, peer_call(P, emqx_guard_run_state, load, []))
         || P <- [PB, PR]],
        NewestFile = lists:last(Files),
        [begin
             Status = ctl(P, ["backup_status"]),
             ct:pal("backup_status:~n~ts", [lists:join("\n", Status)]),
             ?assert(lists:member("runs: 0 ok, 0 failed, 5 skipped", Status), Status),
             [Skip] = [L || L <- Status, lists:prefix("last skipped fire here: ", L)],
             ?assertNotEqual(nomatch, string:find(Skip, "exported by " ++ atom_to_list(NA) ++ ": ok, " ++
                 binary_to_list(NewestFile)), Skip)
         end
         || P <- [PB, PR]],

        %% the exporting node's export fails: one FAILED message per channel, from it
        ok = peer_call(PA, emqx_mgmt_data_backup, set_mode, [{error, disk_full}]),
        ?H:fires(T0, 6, 6, All),
        received_at_least(MailOut, HookOut, 6),
        quiet(All),
        Mails6 = emqx_guard_receivers:received(MailOut) -- Mails,
        Hooks6 = hooks(HookOut) -- Hooks,
        ?assertMatch([_], Mails6, [subject(M) || M <- Mails6]),
        FailedSubject = <<"[emqx_guard] backup FAILED on ", (atom_to_binary(NA))/binary, ":">>,
        ?assertMatch({0, _}, binary:match(subject(hd(Mails6)), FailedSubject)),
        ?assertEqual([{<<"backup_failed">>, atom_to_binary(NA)}], [event_node(H) || H <- Hooks6]),
        #{counts := #{ok := 5, failed := 1}} = status(PA),
        [#{counts := #{ok := 0, failed := 0, skipped := 6}} = status(P) || P <- [PB, PR]]
    after
        stop_started(),
        close_ports(Ports)
    end.

%% Issue 19, defect 2: the lowest core node has the plugin installed but not running. The next
%% core exports every fire and the status on every node says who exports and why; while no node
%% has exported for a day, exactly one dead-man warning goes out, from the healthy core.
stopped_plugin_is_not_elected(Config) ->
    [A, B, R] = names(["stopped_a", "stopped_b", "stopped_r"]),
    {SmtpPort, _MailOut, HookUrl, HookOut, Ports} = receivers(Config),
    T0 = t0(),
    Opts = #{
        %% no backup for a day: the dead-man watch is due at once
        last_success => T0 - 86400000,
        settings => channel_settings(SmtpPort, HookUrl)
    },
    #{B := PB, R := PR} = ?H:start_cluster([{A, core, #{plugin => stopped}}, {B, core}, {R, replicant}], Config, T0, [], Opts),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        ?assertEqual([NA, NB], peer_call(PR, emqx_guard_cores, running, [])),

        %% one dead-man warning in the cluster, from the healthy core; checking again on every
        %% node sends nothing more
        wait_until(fun() -> length(hooks(HookOut)) >= 1 end),
        [ok = peer_call(P, emqx_guard_notify, check_dead_man, []) || P <- [PB, PR, PB, PR]],
        quiet([PB, PR]),
        ?assertEqual([{<<"dead_man">>, atom_to_binary(NB)}], [event_node(H) || H <- hooks(HookOut)]),

        %% core_b exports the fires
        ?H:fires(T0, 1, 3, [PB, PR]),
        ?assertEqual([3, 0], export_counts([PB, PR])),
        #{counts := #{skipped := 3}, last_skip := #{responsible := NB}} = status(PR),
        Why = atom_to_list(NB) ++ " exports scheduled backups (" ++ atom_to_list(NA) ++ ": plugin not running)",
        [begin
             Status = ctl(P, ["backup_status"]),
             ct:pal("backup_status:~n~ts", [lists:join("\n", Status)]),
             ?assert(lists:member("cluster: 3 running node(s); " ++ Why, Status), Status)
         end
         || P <- [PB, PR]],
        quiet([PB, PR]),
        ?assertEqual([<<"dead_man">>], [event(H) || H <- hooks(HookOut)])
    after
        stop_started(),
        close_ports(Ports)
    end.

%% Issue 19, defect 2: the lowest core node runs the plugin but its NIF library cannot be loaded
%% (no library in its priv directory): the next core exports, and the status says why.
unloaded_nif_is_not_elected(Config) ->
    [A, B] = names(["nonif_a", "nonif_b"]),
    T0 = t0(),
    #{A := PA, B := PB} = ?H:start_cluster([{A, core, #{nif => unloadable}}, {B, core}], Config, T0, []),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        ?assertMatch({error, {nif_not_loaded, _}}, peer_call(PA, emqx_guard_core, validate, [<<"* * * * *">>])),
        ?assertMatch(#{schedule_error := {schedule_error, {schedule, {nif_not_loaded, _}}}}, status(PA)),
        ?H:fires(T0, 1, 2, [PB]),
        ?assertEqual([0, 2], export_counts([PA, PB])),
        Status = ctl(PB, ["backup_status"]),
        ct:pal("backup_status:~n~ts", [lists:join("\n", Status)]),
        Head = "cluster: 2 running node(s); " ++ atom_to_list(NB) ++ " exports scheduled backups (" ++
            atom_to_list(NA) ++ ": the NIF library is not loaded: ",
        ?assert(lists:any(fun(L) -> lists:prefix(Head, L) end, Status), Status)
    after
        stop_started()
    end.

%% Issue 19, defect 6: the backup alarm and health follow the cluster's last result. core_a's
%% export fails: the alarm is raised, and health is bad, on every node. core_a goes away, core_b
%% exports the next fire: cleared and healthy everywhere, also on core_a when it comes back
%% (its own last run is still the failed one).
alarm_and_health_follow_the_cluster(Config) ->
    [A, B, R] = names(["alarm_a", "alarm_b", "alarm_r"]),
    T0 = t0(),
    #{A := PA, B := PB, R := PR} = ?H:start_cluster([{A, core}, {B, core}, {R, replicant}], Config, T0, []),
    try
        NA = peer_node(A),
        NB = peer_node(B),
        NR = peer_node(R),
        ok = peer_call(PA, emqx_mgmt_data_backup, set_mode, [{error, disk_full}]),
        ?H:fires(T0, 1, 1, [PA, PB, PR]),
        #{last_run := #{result := failed}} = status(PA),
        [wait_until(fun() -> alarm_active(P) end) || P <- [PA, PB, PR]],
        [#{message := Message}] = alarms(PB),
        ?assertNotEqual(nomatch, string:find(Message, atom_to_binary(NA)), Message),
        ?assertNotEqual(nomatch, string:find(Message, <<"disk_full">>), Message),
        [?assertMatch({error, <<"the last backup failed", _/binary>>}, health(P)) || P <- [PA, PB, PR]],

        %% core_a goes away; core_b exports the next fire
        ok = peer:stop(PA),
        wait_until(fun() -> peer_call(PR, emqx_guard_cores, running, []) =:= [NB] end),
        ?H:fires(T0, 2, 2, [PB, PR]),
        #{last_run := #{result := ok}} = status(PB),
        [wait_until(fun() -> not alarm_active(P) end) || P <- [PB, PR]],
        [?assertEqual(ok, health(P)) || P <- [PB, PR]],

        %% core_a comes back: its own last run failed, the cluster's last backup is good
        #{A := PA2} = ?H:start_cluster([{A, core}], Config, T0 + 2 * ?MINUTE, [NB, NR]),
        #{last_run := #{result := failed}} = status(PA2),
        wait_until(fun() -> health(PA2) =:= ok end),
        ?assertEqual([], alarms(PA2)),
        Status = ctl(PA2, ["backup_status"]),
        ct:pal("backup_status on core_a:~n~ts", [lists:join("\n", Status)]),
        ?assert(lists:any(fun(L) -> lists:prefix("last backup in the cluster: ", L) andalso
            string:find(L, "on " ++ atom_to_list(NB) ++ ": ok") =/= nomatch end, Status), Status),

        %% and a failed fire shows everywhere again, from whichever node exported it
        ok = peer_call(PA2, emqx_mgmt_data_backup, set_mode, [{error, disk_full}]),
        ?H:fires(T0, 3, 3, [PA2, PB, PR]),
        [wait_until(fun() -> alarm_active(P) end) || P <- [PA2, PB, PR]]
    after
        stop_started()
    end.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

%% The current minute (UTC ms): the peers' clock starts there.
t0() ->
    (os:system_time(millisecond) div ?MINUTE) * ?MINUTE.

%% The SMTP server and the webhook receiver: {SmtpPort, MailOut, HookUrl, HookOut, PortHandles}.
receivers(Config) ->
    Base = ?config(priv_dir, Config),
    {SP, SmtpPort, MailOut} = emqx_guard_receivers:start_smtp(Base, ["--mode", "none"]),
    {HP, HookPort, HookOut} = emqx_guard_receivers:start_chat(Base, []),
    HookUrl = iolist_to_binary(["http://127.0.0.1:", integer_to_list(HookPort), "/hook/cluster-truth"]),
    {SmtpPort, MailOut, HookUrl, HookOut, [SP, HP]}.

close_ports(Ports) ->
    lists:foreach(fun(P) -> try port_close(P) catch error:badarg -> ok end end, Ports).

%% E-mail and webhook set with `guard notify_*' on one node, plus `guard notify_on On'.
channels(Peer, SmtpPort, HookUrl, On) ->
    ["notify_smtp_server = \"127.0.0.1\"" | _] = ctl(Peer, [
        "notify_smtp", "server=127.0.0.1", "port=" ++ integer_to_list(SmtpPort), "tls=none", "from=guard@example.com"
    ]),
    ["notify_to = [\"ops@example.com\"]"] = ctl(Peer, ["notify_to", "ops@example.com"]),
    [_] = ctl(Peer, ["notify_webhook", binary_to_list(HookUrl)]),
    [_ | _] = ctl(Peer, ["notify_on" | On]),
    ok.

%% The same channels as settings a node starts with.
channel_settings(SmtpPort, HookUrl) ->
    #{
        notify_smtp_server => <<"127.0.0.1">>,
        notify_smtp_port => SmtpPort,
        notify_smtp_tls => <<"none">>,
        notify_from => <<"guard@example.com">>,
        notify_to => [<<"ops@example.com">>],
        notify_webhook_url => HookUrl
    }.

%% At least N messages arrived at each receiver (a run hands its notification over after it was
%% recorded, so a node may look idle a moment before).
received_at_least(MailOut, HookOut, N) ->
    try
        wait_until(fun() -> emqx_guard_receivers:count(MailOut) >= N andalso length(hooks(HookOut)) >= N end)
    catch
        error:Why ->
            ct:pal("waited for ~B; mails: ~tp~nwebhooks: ~tp", [
                N, [subject(M) || M <- emqx_guard_receivers:received(MailOut)],
                [event_node(H) || H <- hooks(HookOut)]
            ]),
            error(Why)
    end.

%% Every node's notification server has nothing in flight and nothing waiting.
quiet(Peers) ->
    [wait_until(fun() -> notify_idle(P) end) || P <- Peers],
    ok.

notify_idle(Peer) ->
    S = peer_call(Peer, emqx_guard_notify, status, []),
    Busy = [
        K
     || K <- [email, webhook],
        #{state := State} <- [maps:get(K, S, undefined)],
        State =:= sending orelse State =:= retrying
    ],
    Busy =:= [] andalso lists:all(fun(Q) -> Q =:= [] end, maps:values(maps:get(queued, S))).

%% The webhook documents the receiver accepted.
hooks(Out) ->
    [H || H = #{<<"service">> := <<"webhook">>, <<"verdict">> := <<"ok">>} <- emqx_guard_receivers:received(Out)].

doc(Hook) -> maps:get(<<"json">>, Hook).
event(Hook) -> maps:get(<<"event">>, doc(Hook)).
event_node(Hook) -> {event(Hook), maps:get(<<"node">>, doc(Hook))}.
subject(Mail) -> maps:get(<<"subject">>, Mail).

contains(Bin, Part) -> binary:match(Bin, Part) =/= nomatch.

alarms(Peer) ->
    [A || A = #{name := ?ALARM} <- peer_call(Peer, emqx_alarm, active_alarms, [])].

alarm_active(Peer) ->
    alarms(Peer) =/= [].

health(Peer) ->
    peer_call(Peer, emqx_guard_app, on_health_check, [#{}]).
