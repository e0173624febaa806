%% @doc The plugin as ONE scheduler for a whole EMQX cluster.
%%
%% Every node runs the plugin and its own scheduler; this module makes them agree:
%% <ul>
%% <li><b>Who exports.</b> A scheduled (or catch-up) fire is exported only by the responsible
%%     node, the lowest-sorted running core node (`hd(lists:sort(RunningCores))', as EMQX's own
%%     once-per-cluster jobs pick it); replicants never export. The others record the fire as
%%     skipped, naming that node. The responsible node works inside
%%     `global:trans({{emqx_guard_backup, Instant}, self()}, Fun, CoreNodes, 0)': a contended
%%     lock is skipped, never waited for. The lock's requester is the calling process: with the
%%     instant as requester two nodes would share the lock (global grants a lock again to the
%%     same requester). Inside the lock the instant is looked up in the set of instants every
%%     core node knows to be exported (each keeps the 64 it recorded last; a set, not a
%%     high-water mark, so an instant recorded by a node with a fast clock blocks nothing else),
%%     then recorded here and told to every node before the
%%     export starts: an instant is never exported twice. If the responsible node is down, the
%%     next fire is computed with it gone and taken by the next node.</li>
%% <li><b>Settings.</b> A change made with `emqx ctl guard ...' is applied here, given a
%%     version and pushed to every other running node with `erpc:multicall/5'. A version is
%%     `{Counter, Node}', compared as a tuple; a change first asks the running nodes for their
%%     versions and takes `max(highest counter known, this node's clock in ms) + 1', so it is
%%     newer than every change the cluster has seen, whatever the nodes' clocks say. A node
%%     adopts pushed settings only when their version is newer than its own; it answers
%%     `{error, stale}' when it holds other settings of a newer version (the sender reports it). At start and whenever a node connects, every node asks the others
%%     for their settings and adopts the newest: a node that joins, or comes back, takes over
%%     what was set while it was away.</li>
%% <li><b>Copies.</b> After a verified export the responsible node copies the tarball to every
%%     other running core node (`emqx_guard_replica'). The copies run in a job process of this
%%     server, after the scheduler's run has finished (its result and notification never wait
%%     for a copy): one job at a time; a backup that arrives while one runs waits, and only the
%%     newest waits (a superseded one is fetched by the other nodes' catch-up, which they are
%%     asked to run when the jobs are done); a core node that starts or sees a node
%%     connect fetches the newest backups it lacks. The result of the last copy to each node is
%%     kept here and told to every node, so `guard backup_status' shows the same everywhere.</li>
%% </ul>
%% The gen_server only keeps small state (the settings version, the exported instants,
%% the copy results) and answers at once; it never calls another node. Everything that talks to
%% other nodes runs in the caller's process (the scheduler's run worker, the `emqx ctl'
%% process) or in a process of this server (the sync, the copy job). Nothing here may block the scheduler or crash.
%%
%% Options (app env `cluster', a map): `sync_delay_ms' (default 2000), how long after a node
%% connects the sync starts (EMQX's membership is updated a moment after the connection);
%% `now' (default the OS clock), a fun returning this node's time in ms for new versions.
-module(emqx_guard_cluster).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, start_link/1]).
-export([run/3]).
-export([update_settings/1, update_local_settings/1, sync/0]).
-export([status/0, node_report/0, copy_results/0, record_copy/1, replicating/0]).
%% Called on other nodes through erpc.
-export([request_sync/0, settings_offer/0, version/0, adopt_settings/2, was_exported/1, note_exported/1, store_copy/1]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([version/0, copy_result/0, skip_report/0]).

-define(SERVER, ?MODULE).
-define(FORMAT_VSN, 2).
%% How many exported instants each node remembers (the newest recorded).
-define(EXPORTED_MAX, 64).
-define(RPC_TIMEOUT, 5000).
-define(SYNC_DELAY_MS, 2000).

-type version() :: {non_neg_integer(), node()}.
-type copy_result() :: #{
    to := node(),
    from := node(),
    file := binary(),
    at := integer(),
    kind := replicate | catch_up,
    %% when the copied backup was made (the start of its run; else its file's mtime)
    created => integer(),
    result := ok | {error, binary()}
}.
-type skip_report() :: #{
    reason := not_responsible | no_core_node | lock_held | already_exported,
    error := binary(),
    responsible => node(),
    exported_by => node()
}.

-record(st, {
    version :: version(),
    %% the instants recorded as exported, most recently recorded first, at most ?EXPORTED_MAX
    exported = [] :: [integer()],
    copies = #{} :: #{node() => copy_result()},
    sync_delay_ms :: non_neg_integer(),
    now :: fun(() -> integer()),
    syncing = undefined :: undefined | {pid(), reference()},
    %% the copy job running, the newest backup waiting for it, whether one was dropped
    replicating = undefined :: undefined | {pid(), reference()},
    pending = undefined :: undefined | {map(), pos_integer()},
    superseded = false :: boolean(),
    sync_again = false :: boolean()
}).

%%--------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------

%% @doc Starts the cluster server with the options of the `cluster' app env.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    start_link(application:get_env(emqx_guard, cluster, #{})).

%% @doc Starts the cluster server with the given options (see module doc).
-spec start_link(map()) -> gen_server:start_ret().
start_link(Opts) when is_map(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc One run of the scheduler, called in its worker process. `manual' runs here. A
%% `scheduled' or `catchup' run of `Instant' runs here only when this node is responsible and
%% gets the instant's lock; otherwise it is `{skipped, Report}'. After a good export the backup
%% is handed to this node's copy job, which copies it to the other running core nodes after the
%% run returned (the results show in `copy_results/0' and `guard backup_status').
-spec run(manual | scheduled | catchup, undefined | integer(), emqx_guard_backup:run_opts()) ->
    {ok, map()} | {error, map()} | {skipped, skip_report()}.
run(manual, _Instant, Args) ->
    backup_and_copy(Args);
run(_Trigger, Instant, Args) ->
    case emqx_guard_emqx:running_core_nodes() of
        [] ->
            {skipped, #{reason => no_core_node, error => <<"no running core node in the cluster">>}};
        [Responsible | _] when Responsible =/= node() ->
            {skipped, #{
                reason => not_responsible,
                responsible => Responsible,
                error => text("~ts exports this one (the lowest running core node)", [Responsible])
            }};
        Cores ->
            LockId = {{emqx_guard_backup, Instant}, self()},
            case global:trans(LockId, fun() -> exclusive_run(Instant, Cores, Args) end, Cores, 0) of
                aborted ->
                    {skipped, #{
                        reason => lock_held,
                        responsible => node(),
                        error => <<"another node holds the lock for this instant">>
                    }};
                Result ->
                    Result
            end
    end.

%% @doc Applies setting changes here (validated, persisted, rescheduled by the scheduler), gives
%% them a new version and pushes them to every other running node. Returns the new settings and
%% the nodes that did not take them (with why). Runs in the caller's process.
-spec update_settings(map()) ->
    {ok, emqx_guard_settings:settings(), [{node(), binary()}]} | {error, binary()}.
update_settings(Changes) ->
    case update_local_settings(Changes) of
        {ok, Settings} ->
            {ok, Settings, push_settings(Settings, settings_offer_version())};
        {error, _} = Error ->
            Error
    end.

%% @doc Applies setting changes here only, with a new version newer than every running node's
%% (EMQX's dashboard calls the app on every node itself).
-spec update_local_settings(map()) -> {ok, emqx_guard_settings:settings()} | {error, binary()}.
update_local_settings(Changes) ->
    gen_server:call(?SERVER, {update_local, Changes, highest_running_version()}, 30000).

%% @doc Pulls the newest settings from the other running nodes and, on a core node, fetches the
%% newest backups it lacks. Runs in the caller's process; returns what it did.
-spec sync() -> #{settings := unchanged | {adopted, node()}, fetched := [{binary(), ok | {error, binary()}}]}.
sync() ->
    Others = emqx_guard_emqx:running_nodes() -- [node()],
    Adopted = pull_settings(Others),
    Fetched =
        case emqx_guard_emqx:node_role() of
            core -> emqx_guard_replica:catch_up(keep());
            replicant -> []
        end,
    #{settings => Adopted, fetched => Fetched}.

%% @doc The cluster view for `guard backup_status': every running node's role, backups and
%% the last copy to it (also for nodes that are not running now but were copied to), and the node
%% responsible for the next scheduled instant. Asks the other nodes; runs in the caller.
-spec status() -> #{responsible := node() | undefined, nodes := [map()]}.
status() ->
    Running = emqx_guard_emqx:running_nodes(),
    Cores = emqx_guard_emqx:running_core_nodes(),
    Replies = erpc:multicall(Running, ?MODULE, node_report, [], ?RPC_TIMEOUT),
    Reports = lists:zip(Running, Replies),
    Copies = lists:foldl(
        fun
            ({_, {ok, #{copies := C}}}, Acc) -> merge_copies(C, Acc);
            (_, Acc) -> Acc
        end,
        safe_copy_results(),
        Reports
    ),
    Nodes = [
        node_view(N, Reply, lists:member(N, Cores), maps:get(N, Copies, undefined))
     || {N, Reply} <- Reports
    ],
    Gone = [
        #{node => N, running => false, last_copy => C}
     || {N, C} <- lists:sort(maps:to_list(Copies)), not lists:member(N, Running)
    ],
    #{responsible => case Cores of [R | _] -> R; [] -> undefined end, nodes => Nodes ++ Gone}.

node_view(Node, {ok, Report}, _IsCore, LastCopy) ->
    maps:merge(maps:with([role, backups], Report), #{node => Node, running => true, last_copy => LastCopy});
node_view(Node, Error, IsCore, LastCopy) ->
    #{
        node => Node,
        running => true,
        role =>
            case IsCore of
                true -> core;
                false -> replicant
            end,
        backups => {error, text("no answer: ~ts", [rpc_error(Error)])},
        last_copy => LastCopy
    }.

%% @doc What this node holds: its role, its backups (names, newest first) and the copy results
%% it knows. Called on every node by `status/0'.
-spec node_report() -> #{role := core | replicant, backups := [binary()] | {error, binary()}, copies := map()}.
node_report() ->
    #{
        role => emqx_guard_emqx:node_role(),
        backups => emqx_guard_replica:local_names(),
        copies => safe_copy_results()
    }.

%% @doc The newest copy result this node knows per destination node.
-spec copy_results() -> #{node() => copy_result()}.
copy_results() ->
    gen_server:call(?SERVER, copy_results).

%% @doc Whether this node's copy job is running or has a backup waiting.
-spec replicating() -> boolean().
replicating() ->
    gen_server:call(?SERVER, replicating).

%% @doc Records the result of a copy here and tells every other running node (asynchronously).
-spec record_copy(copy_result()) -> ok.
record_copy(Result) ->
    _ = store_copy(Result),
    erpc:multicast(emqx_guard_emqx:running_nodes() -- [node()], ?MODULE, store_copy, [Result]).

%%--------------------------------------------------------------------
%% Called on other nodes
%%--------------------------------------------------------------------

%% @doc Asks this node's server to sync now (pull settings, fetch the backups it lacks).
-spec request_sync() -> ok.
request_sync() ->
    case whereis(?SERVER) of
        undefined -> ok;
        Pid -> Pid ! {?MODULE, sync}, ok
    end.

%% @doc This node's settings and their version.
-spec settings_offer() -> {version(), emqx_guard_settings:settings()}.
settings_offer() ->
    {settings_offer_version(), emqx_guard_scheduler:settings()}.

%% @doc This node's settings version.
-spec version() -> version().
version() ->
    settings_offer_version().

%% @doc Adopts Settings when Version is newer than this node's. `{error, stale}' when this node
%% holds other settings of a newer version; `ok' when it holds these settings already.
-spec adopt_settings(emqx_guard_settings:settings(), version()) -> ok | {error, stale | binary()}.
adopt_settings(Settings, Version) ->
    gen_server:call(?SERVER, {adopt, Settings, Version}, 30000).

%% @doc Whether this node knows Instant to be exported (or being exported) by some node.
-spec was_exported(integer()) -> boolean().
was_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {was_exported, Instant}).

%% @doc Records that Instant was (or is being) exported.
-spec note_exported(integer()) -> ok.
note_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {note_exported, Instant}).

%% @doc Keeps a copy result if it is newer than the one known for its destination.
-spec store_copy(copy_result()) -> ok.
store_copy(Result = #{to := _, at := _}) ->
    gen_server:cast(?SERVER, {store_copy, Result}).

%%--------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------

%% @private
init(Opts) ->
    process_flag(trap_exit, true),
    ok = net_kernel:monitor_nodes(true),
    %% a copy cut short when this node went down left a partial tarball there
    ok = emqx_guard_replica:clear_incoming(),
    Stored = load(),
    St = #st{
        version = maps:get(version, Stored),
        exported = maps:get(exported, Stored),
        sync_delay_ms = maps:get(sync_delay_ms, Opts, ?SYNC_DELAY_MS),
        now = maps:get(now, Opts, fun() -> os:system_time(millisecond) end)
    },
    {ok, St, {continue, sync}}.

%% @private
handle_continue(sync, St) ->
    {noreply, start_sync(St)}.

%% @private
handle_call({update_local, Changes, Floor}, _From, St) ->
    case scheduler_update(Changes) of
        {ok, Settings} ->
            St1 = save(St#st{version = next_version(St#st.version, Floor, (St#st.now)())}),
            {reply, {ok, Settings}, St1};
        {error, _} = Error ->
            {reply, Error, St}
    end;
handle_call({adopt, Settings, Version}, _From, St = #st{version = Mine}) when Version > Mine ->
    Before = scheduler_settings(),
    case scheduler_update(Settings) of
        {ok, _} ->
            %% only what changed, and never the password
            ?LOG_INFO(#{msg => emqx_guard_settings_adopted, version => Version, changed => changed(Before, Settings)}),
            {reply, ok, save(St#st{version = Version})};
        {error, Why} = Error ->
            ?LOG_WARNING(#{msg => emqx_guard_settings_not_adopted, version => Version, reason => Why}),
            {reply, Error, St}
    end;
handle_call({adopt, _Settings, Version}, _From, St = #st{version = Version}) ->
    {reply, ok, St};
handle_call({adopt, Settings, Version}, _From, St) ->
    %% this node changed its settings later: the sender's change lost, and must hear it
    case scheduler_settings() of
        Settings ->
            {reply, ok, St};
        _ ->
            ?LOG_WARNING(#{msg => emqx_guard_settings_stale, version => Version, mine => St#st.version}),
            {reply, {error, stale}, St}
    end;
handle_call(version, _From, St) ->
    {reply, St#st.version, St};
handle_call({was_exported, Instant}, _From, St) ->
    {reply, lists:member(Instant, St#st.exported), St};
handle_call({note_exported, Instant}, _From, St = #st{exported = Known}) ->
    %% a set, not a high-water mark: an instant in the future (a node with a fast clock) must
    %% not make every earlier one look exported
    case lists:member(Instant, Known) of
        true -> {reply, ok, St};
        false -> {reply, ok, save(St#st{exported = lists:sublist([Instant | Known], ?EXPORTED_MAX)})}
    end;
handle_call(replicating, _From, St) ->
    {reply, St#st.replicating =/= undefined orelse St#st.pending =/= undefined, St};
handle_call(copy_results, _From, St) ->
    {reply, St#st.copies, St};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({store_copy, Result = #{to := To}}, St = #st{copies = Copies}) ->
    _ = note_fresh_backup(Result),
    {noreply, St#st{copies = merge_copies(#{To => Result}, Copies)}};
handle_cast({replicate, Report, Keep}, St = #st{replicating = undefined}) ->
    {noreply, start_replication(Report, Keep, St)};
handle_cast({replicate, Report, Keep}, St = #st{pending = Pending}) ->
    %% newest wins: an older backup still waiting is dropped (the catch-up fetches it)
    {noreply, St#st{pending = {Report, Keep}, superseded = St#st.superseded orelse Pending =/= undefined}};
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
        _ -> ?LOG_WARNING(#{msg => emqx_guard_sync_failed, reason => Reason})
    end,
    St1 = St#st{syncing = undefined},
    case St1#st.sync_again of
        true -> {noreply, start_sync(St1#st{sync_again = false})};
        false -> {noreply, St1}
    end;
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{replicating = {_, MRef}}) ->
    case Reason of
        normal -> ok;
        _ -> ?LOG_WARNING(#{msg => emqx_guard_copy_job_failed, reason => Reason})
    end,
    St1 = St#st{replicating = undefined},
    case St1 of
        #st{pending = {Report, Keep}} ->
            {noreply, start_replication(Report, Keep, St1#st{pending = undefined})};
        #st{superseded = true} ->
            %% a backup was dropped from the queue: the other core nodes fetch what they lack
            _ = spawn(fun() ->
                erpc:multicast(emqx_guard_emqx:running_core_nodes() -- [node()], ?MODULE, request_sync, [])
            end),
            {noreply, St1#st{superseded = false}};
        _ ->
            {noreply, St1}
    end;
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% Crash reports and `sys:get_status/1' show the settings carried by a message (or kept in the
%% state) with the password and the webhook credentials replaced.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_notify_config:redacted_status(Status).

%% @private
terminate(_Reason, St) ->
    [exit(Pid, kill) || {Pid, _} <- [St#st.syncing, St#st.replicating]],
    ok.

%%--------------------------------------------------------------------
%% Runs
%%--------------------------------------------------------------------

%% Inside the instant's lock: skip an instant some core node already knows to be exported,
%% otherwise record it everywhere first, then export.
exclusive_run(Instant, Cores, Args) ->
    Others = Cores -- [node()],
    Known = [
        {node(), {ok, was_exported(Instant)}}
        | lists:zip(Others, erpc:multicall(Others, ?MODULE, was_exported, [Instant], ?RPC_TIMEOUT))
    ],
    case [N || {N, {ok, true}} <- Known] of
        [By | _] ->
            {skipped, #{
                reason => already_exported,
                exported_by => By,
                error => text("this instant was already exported by ~ts", [By])
            }};
        [] ->
            ok = note_exported(Instant),
            erpc:multicast(emqx_guard_emqx:running_nodes() -- [node()], ?MODULE, note_exported, [Instant]),
            backup_and_copy(Args)
    end.

%% The copies are made by this node's copy job, after the run returned.
backup_and_copy(Args) ->
    case emqx_guard_backup:run(Args) of
        {ok, Report} ->
            gen_server:cast(?SERVER, {replicate, Report, maps:get(keep, Args)}),
            {ok, Report};
        Other ->
            Other
    end.

%% The targets are the core nodes running when the job starts.
start_replication(Report, Keep, St) ->
    {Pid, MRef} = spawn_monitor(fun() ->
        Targets = emqx_guard_emqx:running_core_nodes() -- [node()],
        _ = emqx_guard_replica:replicate(Report, Keep, Targets),
        ok
    end),
    St#st{replicating = {Pid, MRef}}.

%%--------------------------------------------------------------------
%% Settings
%%--------------------------------------------------------------------

settings_offer_version() ->
    gen_server:call(?SERVER, version).

push_settings(_Settings, _Version, []) ->
    [];
push_settings(Settings, Version, Nodes) ->
    Replies = erpc:multicall(Nodes, ?MODULE, adopt_settings, [Settings, Version], ?RPC_TIMEOUT),
    [
        {N, case R of
            {ok, {error, stale}} -> <<"refused: it holds settings from a later change, which replace this one "
                                      "on every node when the nodes sync; repeat the change to apply it">>;
            {ok, {error, Why}} when is_binary(Why) -> Why;
            _ -> <<(rpc_error(R))/binary, "; it takes the change over when it syncs with the cluster">>
        end}
     || {N, R} <- lists:zip(Nodes, Replies), R =/= {ok, ok}
    ].

push_settings(Settings, Version) ->
    Unreached = push_settings(Settings, Version, emqx_guard_emqx:running_nodes() -- [node()]),
    lists:foreach(
        fun({N, Why}) -> ?LOG_WARNING(#{msg => emqx_guard_settings_not_pushed, node => N, reason => Why}) end,
        Unreached
    ),
    Unreached.

pull_settings([]) ->
    unchanged;
pull_settings(Others) ->
    Offers = [
        {V, N, S}
     || {N, {ok, {V, S}}} <- lists:zip(Others, erpc:multicall(Others, ?MODULE, settings_offer, [], ?RPC_TIMEOUT))
    ],
    Mine = settings_offer_version(),
    case lists:reverse(lists:sort(Offers)) of
        [{V, N, S} | _] when V > Mine ->
            case adopt_settings(S, V) of
                ok -> {adopted, N};
                {error, _} -> unchanged
            end;
        _ ->
            unchanged
    end.

%% The scheduler validates, persists and reschedules; it never calls this server.
scheduler_update(Changes) ->
    try
        emqx_guard_scheduler:update_settings(Changes)
    catch
        exit:{noproc, _} -> {error, <<"the emqx_guard scheduler is not running">>};
        exit:{timeout, _} -> {error, <<"the emqx_guard scheduler did not answer in time">>}
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
    Others = emqx_guard_emqx:running_nodes() -- [node()],
    Versions = [V || {ok, {C, N} = V} <- erpc:multicall(Others, ?MODULE, version, [], ?RPC_TIMEOUT), is_integer(C), is_atom(N)],
    case Versions of
        [] -> undefined;
        _ -> lists:max(Versions)
    end.

keep() ->
    maps:get(backup_keep, emqx_guard_scheduler:settings()).

%%--------------------------------------------------------------------
%% Sync process
%%--------------------------------------------------------------------

start_sync(St = #st{syncing = {_, _}}) ->
    St#st{sync_again = true};
start_sync(St) ->
    {Pid, MRef} = spawn_monitor(fun() ->
        Result = sync(),
        ?LOG_INFO(Result#{msg => emqx_guard_cluster_synced})
    end),
    St#st{syncing = {Pid, MRef}}.

%%--------------------------------------------------------------------
%% Copy results
%%--------------------------------------------------------------------

safe_copy_results() ->
    try
        copy_results()
    catch
        exit:_ -> #{}
    end.

merge_copies(New, Old) when is_map(New) ->
    maps:fold(
        fun
            (To, R = #{at := At}, Acc) ->
                case maps:find(To, Acc) of
                    {ok, #{at := Known}} when Known >= At -> Acc;
                    _ -> Acc#{To => R}
                end;
            (_, _, Acc) ->
                Acc
        end,
        Old,
        New
    );
merge_copies(_, Old) ->
    Old.

%%--------------------------------------------------------------------
%% Persistence: `<data_dir>/emqx_guard/cluster.eterm'
%%--------------------------------------------------------------------

file() ->
    filename:join(emqx_guard_settings:dir(), "cluster.eterm").

load() ->
    %% the same everywhere: a node never adopts defaults from another one
    Default = #{version => {0, none}, exported => []},
    case emqx_guard_settings:read_term_file(file()) of
        {ok, {emqx_guard_cluster, ?FORMAT_VSN, #{version := {Ms, N} = V, exported := E}}} when
            is_integer(Ms), is_atom(N), is_list(E)
        ->
            #{version => V, exported => lists:sublist([I || I <- E, is_integer(I)], ?EXPORTED_MAX)};
        {ok, {emqx_guard_cluster, 1, #{version := {Ms, N} = V, last_exported := L}}} when
            is_integer(Ms), is_atom(N)
        ->
            %% the format before the set: its one instant is still known as exported
            #{version => V, exported => [L || is_integer(L)]};
        {error, enoent} ->
            Default;
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_cluster_state_damaged, path => file(), content => Other}),
            Default
    end.

save(St = #st{version = V, exported = E}) ->
    case emqx_guard_settings:write_term_file(file(), {emqx_guard_cluster, ?FORMAT_VSN, #{version => V, exported => E}}) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_cluster_state_not_saved, reason => Why})
    end,
    St.

%%--------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------

scheduler_settings() ->
    try
        emqx_guard_scheduler:settings()
    catch
        exit:_ -> #{}
    end.

%% The settings of New that differ from Old, safe to log.
changed(Old, New) ->
    emqx_guard_notify_config:redacted(emqx_guard_settings:changed(Old, New)).

%% A fresh backup verified on this node counts as a success for the dead-man watch here, as of
%% when it was made, so a node that takes over exporting knows when the cluster last had a good
%% backup. A catch-up copy (an older backup fetched) says nothing about that.
note_fresh_backup(#{to := To, kind := replicate, result := ok, created := Created}) when
    To =:= node(), is_integer(Created)
->
    emqx_guard_notify:backup_seen(Created);
note_fresh_backup(_) ->
    ok.

rpc_error({error, {erpc, Reason}}) -> text("~tp", [Reason]);
rpc_error({throw, Reason}) -> text("~0tP", [Reason, 8]);
rpc_error({exit, Reason}) -> text("~0tP", [Reason, 8]);
rpc_error({error, Reason}) -> text("~0tP", [Reason, 8]);
rpc_error(Other) -> text("~0tP", [Other, 8]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
