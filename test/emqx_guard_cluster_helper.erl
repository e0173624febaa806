%% @doc Test helper for the cluster suites: real Erlang nodes started with OTP's `peer' module,
%% each running the plugin against the stand-ins with its own data dir. Cluster membership comes
%% from the `emqx' stand-in (connected nodes, each node's `mria_rlog' role).
%%
%% The peers are controlled over their standard I/O (not the distribution), so the test node is
%% not part of their cluster and need not be distributed itself. Every node's scheduler runs on
%% an injected clock: the functions marked "run inside a peer" below keep "now" and the armed
%% timer in persistent_term; `fire_one/2' sets the clock of every node to the instant and hands
%% each scheduler its armed timer message, as the timer would. The notification server and the
%% dead-man watch keep the OS clock.
%%
%% The peers a test case started are remembered in its process dictionary: `stop_started/0'
%% (in an `after') stops them all.
-module(emqx_guard_cluster_helper).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

%% On the test node.
-export([
    names/1,
    peer_node/1,
    start_cluster/4,
    start_cluster/5,
    stop_started/0,
    peer_call/4,
    fires/4,
    fire_one/2,
    export_counts/1,
    status/1,
    settings/1,
    keep/1,
    ctl/2,
    backups/1,
    same_backups/3,
    set_cluster_offset/2,
    wait_until/1
]).
%% Run inside a peer.
-export([
    peer_now/0,
    peer_cluster_now/0,
    peer_send_after/3,
    peer_cancel/1,
    peer_setup/4,
    peer_fire/1,
    peer_idle/0,
    peer_run_idle/0,
    peer_backups/0,
    peer_ctl/1,
    peer_hold_lock/2,
    peer_capture_logs/0,
    peer_captured_logs/0,
    log/2
]).

-define(COOKIE, "emqx_guard_cluster_suite").
-define(DAY_MS, 86400000).

%%--------------------------------------------------------------------
%% On the test node
%%--------------------------------------------------------------------

%% @doc Node names unique to this run and case, one per base name.
-spec names([string()]) -> [string()].
names(Bases) ->
    Suffix = "_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
    ["guard_" ++ B ++ Suffix || B <- Bases].

-spec peer_node(string()) -> node().
peer_node(Name) ->
    {ok, Host} = inet:gethostname(),
    list_to_atom(Name ++ "@" ++ Host).

%% @doc `start_cluster(Specs, Config, Now, Join, #{})'.
-spec start_cluster([tuple()], list(), integer(), [node()]) -> #{string() => pid()}.
start_cluster(Specs, Config, Now, Join) ->
    start_cluster(Specs, Config, Now, Join, #{}).

%% @doc Starts a peer per `{Name, Role}' (or `{Name, Role, NodeOpts}'), connects it to the others
%% and to Join, then starts the plugin on each with its clock at Now. Returns `#{Name => Peer}'.
%%
%% Opts: `notify' (the `notify' application environment of every peer, default `#{}'),
%% `last_success' (what the dead-man watch's state file says at a first start; default a day
%% before Now), `settings' (merged into the settings a first start writes: a schedule every
%% minute in UTC). NodeOpts: `nif => unloadable' starts the node with a copy of the plugin's
%% code without its `priv' directory, so the NIF library cannot be loaded there, as on a node
%% whose library is missing or broken; `plugin => stopped' sets the node up but does not start
%% the plugin (installed, not running); `proto => none | [Version]' makes the node announce and
%% speak those protocol versions between nodes (`none': none announced, version 1 spoken, as
%% the plugin 0.1.0), the `proto_versions' switch of `emqx_guard_proto'; `code => LibDir' runs
%% the plugin of another release on the node: LibDir holds its `ebin' and `priv'.
-spec start_cluster([tuple()], list(), integer(), [node()], map()) -> #{string() => pid()}.
start_cluster(Specs0, Config, Now, Join, Opts) ->
    Specs = [spec(S) || S <- Specs0],
    Peers = maps:from_list([
        {Name, start_peer(Name, code_path(Name, NodeOpts, Config))}
     || {Name, _Role, NodeOpts} <- Specs
    ]),
    All = [peer_node(N) || {N, _, _} <- Specs] ++ Join,
    maps:foreach(
        fun(_Name, Peer) -> [true = peer:call(Peer, net_kernel, connect_node, [N]) || N <- All] end,
        Peers
    ),
    Setup = #{
        notify => maps:get(notify, Opts, #{}),
        last_success => maps:get(last_success, Opts, Now - ?DAY_MS),
        settings => maps:get(settings, Opts, #{})
    },
    lists:foreach(
        fun({Name, Role, NodeOpts}) ->
            DataDir = filename:join(?config(priv_dir, Config), Name),
            NodeSetup = Setup#{start => maps:get(plugin, NodeOpts, running) =:= running, proto => maps:get(proto, NodeOpts, undefined)},
            ok = peer_call(maps:get(Name, Peers), ?MODULE, peer_setup, [DataDir, Role, Now, NodeSetup])
        end,
        Specs
    ),
    Peers.

spec({Name, Role}) -> {Name, Role, #{}};
spec({Name, Role, NodeOpts}) -> {Name, Role, NodeOpts}.

code_path(Name, NodeOpts, Config) ->
    AppEbin = filename:dirname(code:which(emqx_guard_app)),
    Ebin =
        case maps:get(nif, NodeOpts, loadable) of
            loadable when is_map_key(code, NodeOpts) ->
                filename:join(maps:get(code, NodeOpts), "ebin");
            loadable ->
                AppEbin;
            unloadable ->
                %% the plugin's beams under <dir>/emqx_guard/ebin with no priv beside them
                Copy = filename:join([?config(priv_dir, Config), Name ++ "_code", "emqx_guard", "ebin"]),
                ok = filelib:ensure_dir(filename:join(Copy, "x")),
                {ok, Files} = file:list_dir(AppEbin),
                [{ok, _} = file:copy(filename:join(AppEbin, F), filename:join(Copy, F)) || F <- Files],
                Copy
        end,
    lists:usort([Ebin, filename:dirname(code:which(emqx)), filename:dirname(code:which(?MODULE))]).

%% Linked to the test case: a peer never outlives it.
start_peer(Name, CodePath) ->
    Args = lists:append([["-pa", D] || D <- CodePath]) ++ ["-setcookie", ?COOKIE],
    {ok, Peer, _Node} = peer:start_link(#{name => Name, longnames => false, connection => standard_io, args => Args}),
    put({?MODULE, peers}, [Peer | get_peers()]),
    Peer.

get_peers() ->
    case get({?MODULE, peers}) of
        undefined -> [];
        Peers -> Peers
    end.

%% @doc Stops every peer this process started.
-spec stop_started() -> ok.
stop_started() ->
    lists:foreach(fun(P) -> try peer:stop(P) catch _:_ -> ok end end, get_peers()),
    erase({?MODULE, peers}),
    ok.

-spec peer_call(pid(), module(), atom(), list()) -> term().
peer_call(Peer, M, F, A) ->
    peer:call(Peer, M, F, A, 60000).

%% @doc Fires instants First..Last (minutes after T0) on every peer; after each, exactly one
%% export happened in the whole cluster.
-spec fires(integer(), integer(), integer(), [pid()]) -> ok.
fires(T0, First, Last, Peers) ->
    lists:foreach(
        fun(I) ->
            Before = lists:sum(export_counts(Peers)),
            fire_one(T0 + I * 60000, Peers),
            ?assertEqual(Before + 1, lists:sum(export_counts(Peers)), {fire, I})
        end,
        lists:seq(First, Last)
    ).

%% @doc Fires Instant on every peer (in the order given) and waits until every one of them is
%% idle again: no run, no copy made or waiting.
-spec fire_one(integer(), [pid()]) -> ok.
fire_one(Instant, Peers) ->
    [ok = peer_call(P, ?MODULE, peer_fire, [Instant]) || P <- Peers],
    [wait_until(fun() -> peer_call(P, ?MODULE, peer_idle, []) end) || P <- Peers],
    ok.

-spec export_counts([pid()]) -> [non_neg_integer()].
export_counts(Peers) ->
    [peer_call(P, emqx_mgmt_data_backup, export_count, []) || P <- Peers].

-spec status(pid()) -> map().
status(Peer) ->
    peer_call(Peer, emqx_guard_scheduler, status, []).

-spec settings(pid()) -> map().
settings(Peer) ->
    peer_call(Peer, emqx_guard_settings, get, []).

-spec keep(pid()) -> pos_integer().
keep(Peer) ->
    maps:get(backup_keep, settings(Peer)).

%% @doc `emqx ctl guard Args...' on the peer: the printed lines.
-spec ctl(pid(), [string()]) -> [string()].
ctl(Peer, Args) ->
    peer_call(Peer, ?MODULE, peer_ctl, [Args]).

%% @doc The export files in the peer's backup dir (see `peer_backups/0').
-spec backups(pid()) -> #{string() => {binary(), non_neg_integer()}}.
backups(Peer) ->
    peer_call(Peer, ?MODULE, peer_backups, []).

%% @doc Both nodes hold the same N backups, byte for byte, private to the owner.
-spec same_backups(pid(), pid(), non_neg_integer()) -> ok.
same_backups(P1, P2, N) ->
    B1 = backups(P1),
    B2 = backups(P2),
    ?assertEqual(N, map_size(B1)),
    ?assertEqual(B1, B2),
    ?assertEqual([8#600], lists:usort([Mode || {_Sha, Mode} <- maps:values(B1)])),
    ok.

%% @doc Moves the peer's settings-sync clock (`peer_cluster_now/0') by OffsetMs.
-spec set_cluster_offset(pid(), integer()) -> ok.
set_cluster_offset(Peer, OffsetMs) ->
    peer_call(Peer, persistent_term, put, [{?MODULE, cluster_offset}, OffsetMs]).

-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(Fun) ->
    emqx_guard_ct_helper:wait_until(Fun).

%%--------------------------------------------------------------------
%% Run inside a peer
%%--------------------------------------------------------------------

-spec peer_now() -> integer().
peer_now() ->
    persistent_term:get({?MODULE, now}).

%% The cluster server's clock: the OS clock moved by the offset a test sets on this node.
-spec peer_cluster_now() -> integer().
peer_cluster_now() ->
    os:system_time(millisecond) + persistent_term:get({?MODULE, cluster_offset}, 0).

-spec peer_send_after(non_neg_integer(), pid(), term()) -> reference().
peer_send_after(_Delay, _Pid, {emqx_guard_scheduler, Kind, _} = Msg) ->
    persistent_term:put({?MODULE, Kind}, Msg),
    make_ref().

-spec peer_cancel(term()) -> false.
peer_cancel(_Ref) ->
    false.

%% The stand-ins, the fake clock, settings for a schedule every minute in UTC (plus Setup's
%% `settings'), the dead-man watch's last success (Setup's `last_success'; its own clock is the
%% OS clock), the `notify' environment (Setup's `notify'), then the plugin unless Setup's
%% `start' is false.
-spec peer_setup(file:filename(), core | replicant, integer(), map()) -> ok.
peer_setup(DataDir, Role, Now, Setup) ->
    ok = filelib:ensure_dir(filename:join(DataDir, "x")),
    ok = emqx:set_data_dir(DataDir),
    ok = mria_rlog:set_role(Role),
    {ok, _} = emqx_ctl:start(),
    ok = emqx_alarm:reset(),
    ok = emqx_mgmt_data_backup:reset(),
    persistent_term:put({?MODULE, now}, Now),
    ok = application:load(emqx_guard),
    ok = application:set_env(emqx_guard, scheduler, #{
        now => fun ?MODULE:peer_now/0,
        send_after => fun ?MODULE:peer_send_after/3,
        cancel_timer => fun ?MODULE:peer_cancel/1
    }),
    ok = application:set_env(emqx_guard, cluster, #{sync_delay_ms => 100, now => fun ?MODULE:peer_cluster_now/0}),
    ok = application:set_env(emqx_guard, notify, maps:get(notify, Setup)),
    case maps:get(proto, Setup, undefined) of
        undefined -> ok;
        Versions -> ok = application:set_env(emqx_guard, proto_versions, Versions)
    end,
    NotifyState = emqx_guard_store:path("notify_state"),
    case filelib:is_file(NotifyState) of
        true ->
            ok;
        false ->
            LastSuccess = maps:get(last_success, Setup),
            ok = emqx_guard_store:write(NotifyState, #{last_success => LastSuccess, warned_for => undefined})
    end,
    case filelib:is_file(emqx_guard_settings:settings_file()) of
        true ->
            ok;
        false ->
            Every = #{backup_cron => <<"* * * * *">>, backup_timezone => <<"UTC">>},
            ok = emqx_guard_settings:save(
                maps:merge(maps:merge(emqx_guard_settings:defaults(), Every), maps:get(settings, Setup, #{}))
            )
    end,
    case maps:get(start, Setup, true) of
        true ->
            {ok, _} = application:ensure_all_started(emqx_guard),
            %% the scheduler has armed its timer once it answers
            _ = emqx_guard_scheduler:status(),
            ok;
        false ->
            ok
    end.

%% Sets the clock to Instant and hands the scheduler its armed timer, as the timer would.
-spec peer_fire(integer()) -> ok.
peer_fire(Instant) ->
    {emqx_guard_scheduler, wake, _} = Msg = persistent_term:get({?MODULE, wake}),
    persistent_term:put({?MODULE, now}, Instant),
    #{next_fire := Instant} = emqx_guard_scheduler:status(),
    emqx_guard_scheduler ! Msg,
    _ = emqx_guard_scheduler:status(),
    ok.

%% No run, and no copy made or waiting here.
-spec peer_idle() -> boolean().
peer_idle() ->
    peer_run_idle() andalso not emqx_guard_copies:busy().

-spec peer_run_idle() -> boolean().
peer_run_idle() ->
    maps:get(running, emqx_guard_scheduler:status()) =:= undefined.

%% The export files in this node's backup dir: name => {sha256 of the bytes, permission bits}.
-spec peer_backups() -> #{string() => {binary(), non_neg_integer()}}.
peer_backups() ->
    Dir = emqx_guard_emqx:backup_dir(),
    case file:list_dir(Dir) of
        {ok, Names} ->
            maps:from_list([
                {N, backup_fact(filename:join(Dir, N))}
             || N <- Names, lists:prefix("emqx-export-", N), lists:suffix(".tar.gz", N)
            ]);
        {error, enoent} ->
            #{}
    end.

backup_fact(Path) ->
    {ok, Bin} = file:read_file(Path),
    {ok, #file_info{mode = Mode}} = file:read_file_info(Path),
    {crypto:hash(sha256, Bin), Mode band 8#777}.

-spec peer_ctl([string()]) -> [string()].
peer_ctl(Args) ->
    {ok, Out} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command(["guard" | Args]) end),
    [L || L <- string:split(Out, "\n", all), L =/= ""].

%% Keeps every log event of this node from now on (see `peer_captured_logs/0').
-spec peer_capture_logs() -> ok.
peer_capture_logs() ->
    Collector = spawn(fun() -> collect([]) end),
    true = register(guard_log_collector, Collector),
    _ = logger:set_handler_config(default, level, notice),
    ok = logger:set_primary_config(level, all),
    logger:add_handler(guard_capture, ?MODULE, #{level => all}).

-spec peer_captured_logs() -> [logger:log_event()].
peer_captured_logs() ->
    guard_log_collector ! {get, self()},
    receive
        {events, Events} -> Events
    after 5000 -> error(no_collector)
    end.

collect(Acc) ->
    receive
        {event, E} -> collect([E | Acc]);
        {get, From} -> From ! {events, lists:reverse(Acc)}, collect(Acc)
    end.

%% logger handler callback
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(Event, _Config) ->
    guard_log_collector ! {event, Event},
    ok.

%% Holds the global lock on Resource over Nodes from a process of its own, until killed.
-spec peer_hold_lock(term(), [node()]) -> pid().
peer_hold_lock(Resource, Nodes) ->
    Parent = self(),
    Pid = spawn(fun() ->
        true = global:set_lock({Resource, self()}, Nodes, 0),
        Parent ! {locked, self()},
        receive
            never -> ok
        end
    end),
    receive
        {locked, Pid} -> Pid
    after 10000 -> error(lock_not_taken)
    end.
