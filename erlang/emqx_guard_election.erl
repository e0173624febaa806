%% @doc Which node of the cluster exports a scheduled backup, and the guarantee that an instant
%% is exported once.
%%
%% Every node runs its own scheduler and fires every scheduled instant; `run/3' wraps the run
%% of a `scheduled' or `catchup' fire:
%% <ol>
%% <li>Only the responsible node exports: the lowest-sorted running core node
%%     (`responsible/0', as EMQX's own once-per-cluster jobs pick it); replicants never do.</li>
%% <li>It works inside `global:trans({{emqx_guard_backup, Instant}, self()}, Fun, CoreNodes, 0)':
%%     a contended lock is skipped, never waited for. The requester is the calling process: with
%%     the instant as requester two nodes would share the lock (global grants a lock again to
%%     the same requester).</li>
%% <li>Inside the lock the instant is looked up in the set of instants every core node knows to
%%     be exported (each keeps the 64 it recorded last, persisted; a set, not a high-water mark,
%%     so an instant recorded by a node whose clock runs fast blocks nothing else), then recorded
%%     here and told to every node before the export starts.</li>
%% </ol>
%% Any other outcome is a skip, `{Reason, Node}' or `no_core_node', which the run records.
%% A `manual' run (`guard backup_now') runs where it is typed.
%%
%% The node that made (or failed) a backup tells every other running node its result
%% (`announce_result/1', `emqx_guard_outcome:summary/1'), so that every node knows who exported a
%% fire and how it went (`emqx_guard_scheduler:cluster_result/1').
%%
%% The gen_server only keeps the set of exported instants; the election runs in the caller.
%% Every call to another node's plugin made for these goes through the functions under
%% "Remote calls" below.
-module(emqx_guard_election).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, responsible/0, run/3, announce_result/1]).
%% Called on other nodes through erpc.
-export([was_exported/1, note_exported/1, result_seen/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([skip/0]).

-type skip() :: no_core_node | {not_responsible | lock_held | already_exported, node()}.

-define(SERVER, ?MODULE).
-define(STATE_FILE, "exported.eterm").
-define(FORMAT_VSN, 1).
%% How many exported instants each node remembers (the newest recorded).
-define(EXPORTED_MAX, 64).
-define(RPC_TIMEOUT, 5000).

%% @doc Starts the server holding this node's set of exported instants.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc The node that exports scheduled backups: the lowest-sorted running core node, or
%% `undefined' when no core node runs. The one home of this rule.
-spec responsible() -> node() | undefined.
responsible() ->
    case emqx_guard_emqx:running_core_nodes() of
        [Node | _] -> Node;
        [] -> undefined
    end.

%% @doc Runs `Run()' when this node is to export this fire (see the module doc), else returns
%% `{skip, Skip}'. Runs in the caller's process.
-spec run(emqx_guard_outcome:trigger(), integer() | undefined, fun(() -> Result)) -> Result | {skip, skip()}.
run(manual, _Instant, Run) ->
    Run();
run(_Trigger, Instant, Run) ->
    Here = node(),
    case responsible() of
        undefined ->
            {skip, no_core_node};
        Here ->
            Cores = emqx_guard_emqx:running_core_nodes(),
            LockId = {{emqx_guard_backup, Instant}, self()},
            case global:trans(LockId, fun() -> once(Instant, Cores, Run) end, Cores, 0) of
                aborted -> {skip, {lock_held, Here}};
                Result -> Result
            end;
        Responsible ->
            {skip, {not_responsible, Responsible}}
    end.

%% Inside the instant's lock: skip an instant some core node already knows to be exported,
%% otherwise record it everywhere first, then run.
once(Instant, Cores, Run) ->
    Others = Cores -- [node()],
    Known = [
        {node(), {ok, was_exported(Instant)}}
        | lists:zip(Others, erpc:multicall(Others, ?MODULE, was_exported, [Instant], ?RPC_TIMEOUT))
    ],
    case [N || {N, {ok, true}} <- Known] of
        [By | _] ->
            {skip, {already_exported, By}};
        [] ->
            ok = note_exported(Instant),
            erpc:multicast(emqx_guard_emqx:running_nodes() -- [node()], ?MODULE, note_exported, [Instant]),
            Run()
    end.

%% @doc Tells every other running node the result of a backup made (or failed) here (its
%% `emqx_guard_outcome:summary/1'). Never blocks: the nodes are told from a process of its own.
-spec announce_result(emqx_guard_outcome:outcome()) -> ok.
announce_result(Summary) ->
    _ = spawn(fun() -> erpc:multicast(emqx_guard_emqx:running_nodes() -- [node()], ?MODULE, result_seen, [Summary]) end),
    ok.

%% @doc Another node's backup result (`announce_result/1'), handed to this node's scheduler.
-spec result_seen(emqx_guard_outcome:outcome()) -> ok.
result_seen(Summary) when is_map(Summary) ->
    emqx_guard_scheduler:cluster_result(Summary).

%% @doc Whether this node knows Instant to be exported (or being exported) by some node.
-spec was_exported(integer()) -> boolean().
was_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {was_exported, Instant}).

%% @doc Records that Instant was (or is being) exported.
-spec note_exported(integer()) -> ok.
note_exported(Instant) when is_integer(Instant) ->
    gen_server:call(?SERVER, {note_exported, Instant}).

%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    {ok, load()}.

%% @private
handle_call({was_exported, Instant}, _From, Known) ->
    {reply, lists:member(Instant, Known), Known};
handle_call({note_exported, Instant}, _From, Known) ->
    case lists:member(Instant, Known) of
        true -> {reply, ok, Known};
        false -> {reply, ok, save(lists:sublist([Instant | Known], ?EXPORTED_MAX))}
    end;
handle_call(Request, _From, Known) ->
    {reply, {error, {unknown_call, Request}}, Known}.

%% @private
handle_cast(_Msg, Known) ->
    {noreply, Known}.

%% `<data_dir>/emqx_guard/exported.eterm'; before it existed the set was kept in cluster.eterm.
load() ->
    Path = emqx_guard_store:path(?STATE_FILE),
    case emqx_guard_store:read(Path) of
        {ok, {emqx_guard_exported, ?FORMAT_VSN, Instants}} when is_list(Instants) ->
            valid(Instants);
        {error, enoent} ->
            load_older();
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_exported_state_damaged, path => Path, content => Other}),
            []
    end.

load_older() ->
    case emqx_guard_store:read(emqx_guard_store:path("cluster.eterm")) of
        {ok, {emqx_guard_cluster, 2, #{exported := Instants}}} when is_list(Instants) -> valid(Instants);
        {ok, {emqx_guard_cluster, 1, #{last_exported := I}}} when is_integer(I) -> [I];
        _ -> []
    end.

valid(Instants) ->
    lists:sublist([I || I <- Instants, is_integer(I)], ?EXPORTED_MAX).

save(Known) ->
    case emqx_guard_store:write(emqx_guard_store:path(?STATE_FILE), {emqx_guard_exported, ?FORMAT_VSN, Known}) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_exported_state_not_saved, reason => Why})
    end,
    Known.
