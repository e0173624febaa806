%% @doc One set of settings for the whole cluster: every change goes through here, is given a
%% version and reaches every running node.
%%
%% <ul>
%% <li>A change made with `emqx ctl guard ...' (`update/1') is applied here, given a version and
%%     pushed to every other running node, all at once. A version is
%%     `{Counter, Node}', compared as a tuple; a change first asks the running nodes for their
%%     versions and takes `max(highest counter known, this node's clock in ms) + 1', so it is
%%     newer than every change the cluster has seen whatever the nodes' clocks say.</li>
%% <li>A node adopts pushed settings only when their version is newer than its own; it answers
%%     `{error, stale}' when it holds other settings of a newer version (the sender warns).</li>
%% <li>At start and whenever a node connects, every node asks the others for their settings and
%%     adopts the newest, and a core node fetches the newest backups it lacks
%%     (`emqx_guard_copies:catch_up/1'): a node that joins, or comes back, catches up.</li>
%% <li>Dashboard changes (EMQX calls every node itself) take `update_local/1': a new version,
%%     no push.</li>
%% <li>Other releases: a node that speaks protocol version 2 or newer is offered, and offers,
%%     every key (`offer/0', `adopt_all/2'); a node of 0.1.0 (version 1) only the keys that
%%     release knows (`settings_offer/0', `adopt/2'; `emqx_guard_proto:settings_for/2'), the
%%     others staying as they are there and here. Of two offers of one version the complete one
%%     wins. A node with no version in common is not asked, and a push names it as not
%%     reached.</li>
%% </ul>
%% The server serialises the changes (`emqx_guard_settings:change/1' validates and saves them;
%% this server logs the changed keys, secrets redacted), then tells the scheduler (`emqx_guard_scheduler:settings_changed/0')
%% and the off-site queue (`emqx_guard_offsite_queue:settings_changed/0'). It never calls
%% another node itself: pushes and pulls run in the caller or in its sync process. The version
%% persists in `<data_dir>/emqx_guard/cluster.eterm'.
%%
%% Options (app env `cluster', a map): `sync_delay_ms' (2000), how long after a node connects the
%% sync starts (EMQX's membership is updated a moment after the connection); `now' (the OS
%% clock), a fun returning this node's time in ms for new versions; `call_timeout_ms' (30000),
%% how long a caller of `update/1' or `update_local/1' waits for the change to be applied.
%%
%% No secret is logged or sent back in a reason: changes are logged as the changed keys,
%% redacted, and every failure's reason (a crashed sync, a refused push) goes through
%% `emqx_guard_redact:term/2' first; `format_status/1' redacts settings in crash reports.
-module(emqx_guard_settings_sync).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, start_link/1, update/1, update_local/1, sync/0]).
%% What other nodes call here: protocol version 1 (`emqx_guard_proto_v1') and 2 (`_v2').
-export([request_sync/0, settings_offer/0, version/0, adopt/2, offer/0, adopt_all/2]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([version/0]).

-define(SERVER, ?MODULE).
-define(STATE_FILE, "cluster.eterm").
%% cluster.eterm: the settings version; formats 1 and 2 also held the exported instants (moved
%% to exported.eterm: `emqx_guard_election').
-define(FORMAT, #{
    tag => emqx_guard_cluster,
    version => 3,
    upgrades => #{1 => fun format_1_to_2/1, 2 => fun format_2_to_3/1}
}).
-define(RPC_TIMEOUT, 5000).
-define(SYNC_DELAY_MS, 2000).
-define(CALL_TIMEOUT_MS, 30000).

-type version() :: {non_neg_integer(), node() | none}.

-record(st, {
    version :: version(),
    sync_delay_ms :: non_neg_integer(),
    now :: fun(() -> integer()),
    syncing = undefined :: undefined | {pid(), reference()},
    sync_again = false :: boolean()
}).

%%--------------------------------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------------------------------

%% @doc Starts the server with the options of the `cluster' app env.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    start_link(application:get_env(emqx_guard, cluster, #{})).

%% @doc Starts the server with the given options (see the module doc).
-spec start_link(map()) -> gen_server:start_ret().
start_link(Opts) when is_map(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc Applies setting changes here, gives them a new version and pushes them to every other
%% running node. Returns the new settings and the nodes that did not take them (with why). Runs
%% in the caller's process (the `emqx ctl' command).
-spec update(map()) -> {ok, emqx_guard_settings:settings(), [{node(), binary()}]} | {error, term()}.
update(Changes) ->
    case update_local(Changes) of
        {ok, Settings} ->
            {ok, Settings, push(Settings, version())};
        {error, _} = Error ->
            Error
    end.

%% @doc Applies setting changes here only, with a version newer than every running node's.
-spec update_local(map()) -> {ok, emqx_guard_settings:settings()} | {error, term()}.
update_local(Changes) ->
    Opts = application:get_env(emqx_guard, cluster, #{}),
    gen_server:call(?SERVER, {update_local, Changes, highest_running_version()}, maps:get(call_timeout_ms, Opts, ?CALL_TIMEOUT_MS)).

%% @doc Pulls the newest settings from the other running nodes and, on a core node, fetches the
%% newest backups it lacks. Runs in the caller's process; returns what it did.
-spec sync() -> #{settings := unchanged | {adopted, node()}, fetched := [{binary(), ok | {error, term()}}]}.
sync() ->
    Adopted = pull(emqx_guard_emqx:running_nodes() -- [node()]),
    Fetched =
        case emqx_guard_emqx:node_role() of
            core -> emqx_guard_copies:catch_up(emqx_guard_retention:count(maps:get(backup_keep, emqx_guard_settings:get())));
            replicant -> []
        end,
    #{settings => Adopted, fetched => Fetched}.

%% @doc Asks this node's server to sync now (pull settings, fetch the backups it lacks).
-spec request_sync() -> ok.
request_sync() ->
    case whereis(?SERVER) of
        undefined -> ok;
        Pid -> Pid ! {?MODULE, sync}, ok
    end.

%% @doc This node's settings as 0.1.0 knows them (protocol version 1) and their version.
-spec settings_offer() -> {version(), map()}.
settings_offer() ->
    {version(), emqx_guard_proto:settings_for(1, emqx_guard_settings:get())}.

%% @doc This node's settings, every key (protocol version 2), and their version.
-spec offer() -> {version(), emqx_guard_settings:settings()}.
offer() ->
    {version(), emqx_guard_settings:get()}.

%% @doc This node's settings version.
-spec version() -> version().
version() ->
    gen_server:call(?SERVER, version).

%% @doc Adopts Settings (the keys of 0.1.0, protocol version 1: the other keys stay as they are)
%% when Version is newer than this node's. `{error, stale}' when this node holds other settings
%% of a newer version; `ok' when it holds these settings already.
-spec adopt(map(), version()) -> ok | {error, stale | binary()}.
adopt(Settings, Version) ->
    gen_server:call(?SERVER, {adopt, Settings, Version}, 30000).

%% @doc Adopts Settings (every key, protocol version 2) as `adopt/2' does.
-spec adopt_all(emqx_guard_settings:settings(), version()) -> ok | {error, stale | binary()}.
adopt_all(Settings, Version) ->
    adopt(Settings, Version).

%%--------------------------------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------------------------------

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    ok = net_kernel:monitor_nodes(true),
    St = #st{
        version = load(),
        sync_delay_ms = maps:get(sync_delay_ms, Opts, ?SYNC_DELAY_MS),
        now = maps:get(now, Opts, fun() -> os:system_time(millisecond) end)
    },
    {ok, St, {continue, sync}}.

%% @private
handle_continue(sync, St) ->
    {noreply, start_sync(St)}.

%% @private
handle_call({update_local, Changes, Floor}, _From, St) ->
    case apply_changes(Changes) of
        {ok, Old, Settings} ->
            ?LOG_INFO(#{
                msg => emqx_guard_settings_changed, old => redacted_changes(Settings, Old), new => redacted_changes(Old, Settings)
            }),
            {reply, {ok, Settings}, save(St#st{version = next_version(St#st.version, Floor, (St#st.now)())})};
        {error, _} = Error ->
            {reply, Error, St}
    end;
handle_call({adopt, Settings, Version}, _From, St = #st{version = Mine}) when Version > Mine ->
    case apply_changes(Settings) of
        {ok, Old, New} ->
            %% only what changed, and never a secret
            ?LOG_INFO(#{msg => emqx_guard_settings_adopted, version => Version, changed => redacted_changes(Old, New)}),
            {reply, ok, save(St#st{version = Version})};
        {error, Why} ->
            %% the answer crosses to another node: its line, whatever reasons that node knows
            Line = emqx_guard_outcome:format_error(Why),
            ?LOG_WARNING(#{msg => emqx_guard_settings_not_adopted, version => Version, reason => Line}),
            {reply, {error, Line}, St}
    end;
handle_call({adopt, _Settings, Version}, _From, St = #st{version = Version}) ->
    {reply, ok, St};
handle_call({adopt, Settings, Version}, _From, St) ->
    %% this node changed its settings later: the sender's change lost, and must hear it
    case maps:with(maps:keys(Settings), emqx_guard_settings:get()) of
        Settings ->
            {reply, ok, St};
        _ ->
            ?LOG_WARNING(#{msg => emqx_guard_settings_stale, version => Version, mine => St#st.version}),
            {reply, {error, stale}, St}
    end;
handle_call(version, _From, St) ->
    {reply, St#st.version, St};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
handle_info({nodeup, Node}, St) ->
    ?LOG_INFO(#{msg => emqx_guard_node_up, node => Node}),
    erlang:send_after(St#st.sync_delay_ms, self(), {?MODULE, sync}),
    {noreply, St};
handle_info({?MODULE, sync}, St) ->
    {noreply, start_sync(St)};
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{syncing = {_, MRef}}) ->
    case Reason of
        normal -> ok;
        %% a failed adoption's reason may quote the settings it was given
        _ -> ?LOG_WARNING(#{msg => emqx_guard_sync_failed, reason => emqx_guard_redact:term(Reason)})
    end,
    case St#st.sync_again of
        true -> {noreply, start_sync(St#st{syncing = undefined, sync_again = false})};
        false -> {noreply, St#st{syncing = undefined}}
    end;
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% Crash reports and `sys:get_status/1' show settings carried by a message redacted.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_redact:status(Status).

%% @private
terminate(_Reason, #st{syncing = Syncing}) ->
    [exit(Pid, kill) || {Pid, _} <- [Syncing]],
    ok.

%%--------------------------------------------------------------------------------------------

%% Validated and saved by emqx_guard_settings; the scheduler re-arms its timer. Without a
%% running scheduler nothing changes (it would miss the change until it restarts).
apply_changes(Changes) ->
    case whereis(emqx_guard_scheduler) =/= undefined andalso emqx_guard_settings:change(Changes) of
        false ->
            {error, {not_running, emqx_guard_scheduler}};
        {ok, _Old, _New} = Changed ->
            emqx_guard_scheduler:settings_changed(),
            %% a cast: without a destination the off-site queue drops what waits
            emqx_guard_offsite_queue:settings_changed(),
            Changed;
        {error, _} = Error ->
            Error
    end.

%% The entries of New that differ from Old, safe to log.
redacted_changes(Old, New) ->
    emqx_guard_redact:settings(emqx_guard_settings:changed(Old, New)).

push(Settings, Version) ->
    Peers = emqx_guard_proto:negotiate(emqx_guard_emqx:running_nodes() -- [node()]),
    V1 = emqx_guard_proto:at(1, Peers),
    V2 = emqx_guard_proto:speaking(2, Peers),
    Replies =
        lists:zip(V1, emqx_guard_proto_v1:adopt_settings(V1, emqx_guard_proto:settings_for(1, Settings), Version, ?RPC_TIMEOUT)) ++
            lists:zip(V2, emqx_guard_proto_v2:adopt_settings(V2, Settings, Version, ?RPC_TIMEOUT)) ++
            [{N, {error, {erpc, Why}}} || {N, {no_answer, Why}} <- emqx_guard_proto:unanswered(Peers)] ++
            [{N, {not_asked, Why}} || {N, Why} <- emqx_guard_proto:mismatched(Peers)],
    %% a node's failure may quote the settings it was sent
    Unreached = [{N, refusal(emqx_guard_redact:term(R, [Settings]))} || {N, R} <- lists:sort(Replies), R =/= {ok, ok}],
    lists:foreach(
        fun({N, Why}) -> ?LOG_WARNING(#{msg => emqx_guard_settings_not_pushed, node => N, reason => Why}) end, Unreached
    ),
    Unreached.

refusal({ok, {error, stale}}) ->
    <<"refused: it holds settings from a later change, which replace this one on every node when the nodes "
      "sync; repeat the change to apply it">>;
refusal({ok, {error, Why}}) when is_binary(Why) ->
    Why;
refusal({not_asked, Why}) ->
    <<(emqx_guard_outcome:format_error(Why))/binary, "; it does not take settings from this node">>;
refusal(Reply) ->
    <<(rpc_error(Reply))/binary, "; it takes the change over when it syncs with the cluster">>.

pull([]) ->
    unchanged;
pull(Others) ->
    Peers = emqx_guard_proto:negotiate(Others),
    V1 = emqx_guard_proto:at(1, Peers),
    V2 = emqx_guard_proto:speaking(2, Peers),
    %% of two offers of one version, the complete one (every key) wins
    Offers =
        [{V, partial, N, S} || {N, {ok, {V, S}}} <- lists:zip(V1, emqx_guard_proto_v1:settings_offer(V1, ?RPC_TIMEOUT))] ++
            [{V, complete, N, S} || {N, {ok, {V, S}}} <- lists:zip(V2, emqx_guard_proto_v2:settings_offer(V2, ?RPC_TIMEOUT))],
    Mine = version(),
    case lists:reverse(lists:sort(Offers)) of
        [{V, _, N, S} | _] when V > Mine, is_map(S) ->
            case adopt(S, V) of
                ok -> {adopted, N};
                {error, _} -> unchanged
            end;
        _ ->
            unchanged
    end.

%% Newer than this node's version, than the highest the running nodes told (Floor), and not
%% behind this node's clock (so versions stay comparable with the clock-based ones of old).
next_version({Mine, _}, Floor, Now) ->
    Highest =
        case Floor of
            {F, _} when is_integer(F) -> max(Mine, F);
            _ -> Mine
        end,
    {max(Highest, Now) + 1, node()}.

%% The highest settings version among the other running nodes (undefined when none answers).
highest_running_version() ->
    Asked = emqx_guard_proto:speaking(1, emqx_guard_proto:negotiate(emqx_guard_emqx:running_nodes() -- [node()])),
    Replies = emqx_guard_proto_v1:settings_version(Asked, ?RPC_TIMEOUT),
    case [V || {ok, {C, N} = V} <- Replies, is_integer(C), is_atom(N)] of
        [] -> undefined;
        Versions -> lists:max(Versions)
    end.

start_sync(St = #st{syncing = {_, _}}) ->
    St#st{sync_again = true};
start_sync(St) ->
    {Pid, MRef} = spawn_monitor(fun() ->
        %% not inside the macro: a log level that drops info would skip the sync
        Result = #{fetched := Fetched} = sync(),
        Lines = [{Name, emqx_guard_cluster_errors:wire(R)} || {Name, R} <- Fetched],
        ?LOG_INFO(Result#{msg => emqx_guard_cluster_synced, fetched := Lines})
    end),
    St#st{syncing = {Pid, MRef}}.

%% The same everywhere: a node never adopts defaults from another one.
load() ->
    Path = emqx_guard_store:path(?STATE_FILE),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, #{version := {Ms, N} = V}} when is_integer(Ms), is_atom(N) ->
            V;
        none ->
            {0, none};
        %% a newer plugin's file: said by the store
        newer ->
            {0, none};
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_cluster_state_damaged, path => Path, content => Other}),
            {0, none}
    end.

format_1_to_2(#{version := V, last_exported := L}) -> #{version => V, exported => [L]}.

format_2_to_3(Body = #{version := _}) -> maps:with([version], Body).

save(St = #st{version = V}) ->
    case emqx_guard_store:save(emqx_guard_store:path(?STATE_FILE), ?FORMAT, #{version => V}) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_cluster_state_not_saved, reason => Why})
    end,
    St.

rpc_error({error, {erpc, Reason}}) -> text("~tp", [Reason]);
rpc_error({Class, Reason}) when Class =:= throw; Class =:= exit; Class =:= error -> text("~0tP", [Reason, 8]);
rpc_error(Other) -> text("~0tP", [Other, 8]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
