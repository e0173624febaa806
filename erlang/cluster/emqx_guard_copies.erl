%% @doc The copy jobs of this node: after a verified export, the backup is copied to every other
%% running core node (`emqx_guard_replica' streams it), and the result of the last copy to each
%% node is kept and told to every node, so `guard backup_status' shows the same everywhere.
%%
%% The copies run in a job process of this server after the run has finished (its result and
%% notification never wait for a copy): one job at a time; a backup that arrives while one runs
%% waits, and only the newest waits. A superseded one is fetched by the other core nodes'
%% catch-up, which they are asked to run (`emqx_guard_settings_sync:request_sync/0') when the
%% jobs are done. The targets are the core nodes running when the job starts.
%%
%% A core node that starts, or sees a node connect, fetches the newest backups it lacks
%% (`catch_up/1', run by the settings sync).
%%
%% Every call to other nodes here is of protocol version 1 (`emqx_guard_proto_v1'), which every
%% release speaks; a node with no version in common with this one (`emqx_guard_proto') is
%% neither copied to nor asked.
%%
%% The off-site copies (S3) are handed over by the run the same way, to a queue of the same
%% shape with its own status, alarm and notifications: `emqx_guard_offsite_queue'.
-module(emqx_guard_copies).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, enqueue/2, catch_up/1, results/0, result/6, record/1, busy/0, newest/2]).
%% What other nodes call here (`emqx_guard_proto_v1').
-export([store/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([copy_result/0]).

-define(SERVER, ?MODULE).
-define(CALL_MS, 15000).

-type copy_result() :: #{
    to := node(),
    from := node(),
    file := binary(),
    at := integer(),
    kind := replicate | catch_up,
    %% when the copied backup was made (the start of its run; else its file's mtime)
    created => integer(),
    %% an error as its line: every node is told the result (`emqx_guard_proto_v1')
    result := ok | {error, binary()}
}.

-record(st, {
    results = #{} :: #{node() => copy_result()},
    job = undefined :: undefined | {pid(), reference()},
    waiting = undefined :: undefined | {emqx_guard_outcome:outcome(), pos_integer()},
    superseded = false :: boolean()
}).

%% @doc Starts the server, registered as `emqx_guard_copies'.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Copies the backup of a good run to the other running core nodes, later, in the job
%% process (pruning each to Keep). Never blocks.
-spec enqueue(emqx_guard_outcome:outcome(), pos_integer()) -> ok.
enqueue(Outcome, Keep) ->
    gen_server:cast(?SERVER, {enqueue, Outcome, Keep}).

%% @doc Fetches, from the other running core nodes, the backups among the cluster's newest Keep
%% that this node lacks. Returns what it fetched (names, oldest first) with each result. Runs
%% in the caller's process.
-spec catch_up(pos_integer()) -> [{binary(), ok | {error, term()}}].
catch_up(Keep) ->
    Others = emqx_guard_cores:running() -- [node()],
    Mine =
        case emqx_guard_backups:names() of
            L when is_list(L) -> L;
            {error, _} -> []
        end,
    Asked = emqx_guard_proto:speaking(1, emqx_guard_proto:negotiate(Others)),
    Replies = emqx_guard_proto_v1:list_names(Asked, ?CALL_MS),
    Held = [{N, Names} || {N, {ok, Names}} <- lists:zip(Asked, Replies), is_list(Names)],
    %% export names carry the time in a fixed-width form: sorting names sorts by time
    Newest = lists:sublist(lists:reverse(lists:usort(Mine ++ lists:append([Ns || {_, Ns} <- Held]))), Keep),
    Missing = lists:reverse(Newest -- Mine),
    [{Name, emqx_guard_replica:fetch(Name, [N || {N, Ns} <- Held, lists:member(Name, Ns)], Keep)} || Name <- Missing].

%% @doc The newest copy result this node knows per destination node (`#{}' when not running).
-spec results() -> #{node() => copy_result()}.
results() ->
    try
        gen_server:call(?SERVER, results)
    catch
        exit:_ -> #{}
    end.

%% @doc Whether a copy job runs or a backup waits for one.
-spec busy() -> boolean().
busy() ->
    gen_server:call(?SERVER, busy).

%% @doc The result of a copy of backup Name to node To from node From, made now; a failed one
%% with its reason as a line (`emqx_guard_outcome:format_error/1'), as other nodes are told it.
-spec result(node(), node(), binary() | string(), replicate | catch_up, integer(), ok | {error, term()}) -> copy_result().
result(To, From, Name, Kind, Created, Outcome) ->
    #{
        to => To,
        from => From,
        file => unicode:characters_to_binary(Name),
        at => erlang:system_time(millisecond),
        kind => Kind,
        created => Created,
        result => emqx_guard_cluster_errors:wire(Outcome)
    }.

%% @doc Records the result of a copy here and tells every other running node. Never blocks: the
%% nodes are told from a process of its own.
-spec record(copy_result()) -> ok.
record(Result) ->
    ok = store(Result),
    _ = spawn(fun() -> emqx_guard_proto_v1:store_copy_result(other_nodes(emqx_guard_emqx:running_nodes()), Result) end),
    ok.

%% @doc Keeps a copy result if it is newer than the one known for its destination.
-spec store(copy_result()) -> ok.
store(Result = #{to := _, at := _}) ->
    gen_server:cast(?SERVER, {store, Result}).

%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    process_flag(trap_exit, true),
    %% a copy cut short when this node went down left a partial tarball behind
    ok = emqx_guard_replica_receiver:clear_incoming(),
    {ok, #st{}}.

%% @private
handle_call(results, _From, St) ->
    {reply, St#st.results, St};
handle_call(busy, _From, St) ->
    {reply, St#st.job =/= undefined orelse St#st.waiting =/= undefined, St};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({store, Result = #{to := To}}, St) ->
    ok = note_fresh_backup(Result),
    {noreply, St#st{results = newest(#{To => Result}, St#st.results)}};
handle_cast({enqueue, Outcome, Keep}, St = #st{job = undefined}) ->
    {noreply, start_job(Outcome, Keep, St)};
handle_cast({enqueue, Outcome, Keep}, St = #st{waiting = Waiting}) ->
    %% newest wins: an older backup still waiting is dropped (the catch-up fetches it)
    {noreply, St#st{waiting = {Outcome, Keep}, superseded = St#st.superseded orelse Waiting =/= undefined}};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{job = {_, MRef}}) ->
    case Reason of
        normal -> ok;
        _ -> ?LOG_WARNING(#{msg => emqx_guard_copy_job_failed, reason => Reason})
    end,
    case St#st{job = undefined} of
        St1 = #st{waiting = {Outcome, Keep}} ->
            {noreply, start_job(Outcome, Keep, St1#st{waiting = undefined})};
        St1 = #st{superseded = true} ->
            %% a backup was dropped from the queue: the other core nodes fetch what they lack
            _ = spawn(fun() -> emqx_guard_proto_v1:request_sync(other_nodes(emqx_guard_cores:running())) end),
            {noreply, St1#st{superseded = false}};
        St1 ->
            {noreply, St1}
    end;
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
terminate(_Reason, #st{job = Job}) ->
    [exit(Pid, kill) || {Pid, _} <- [Job]],
    ok.

start_job(Outcome, Keep, St) ->
    {Pid, MRef} = spawn_monitor(fun() ->
        %% a node that does not answer is tried (its failure is the copy's result), one with no
        %% version in common is not
        Peers = emqx_guard_proto:negotiate(emqx_guard_cores:running() -- [node()]),
        Skipped = emqx_guard_proto:mismatched(Peers),
        lists:foreach(fun({N, Why}) -> ?LOG_WARNING(#{msg => emqx_guard_copy_skipped, to => N, reason => Why}) end, Skipped),
        Targets = lists:sort(maps:keys(Peers)) -- [N || {N, _} <- Skipped],
        _ = emqx_guard_replica:replicate(Outcome, Keep, Targets),
        ok
    end),
    St#st{job = {Pid, MRef}}.

%% The nodes among Nodes, other than this one, that speak a version with it.
other_nodes(Nodes) ->
    emqx_guard_proto:speaking(1, emqx_guard_proto:negotiate(Nodes -- [node()])).

%% @doc Old with the results of New that are newer for their destination node.
-spec newest(#{node() => copy_result()}, #{node() => copy_result()}) -> #{node() => copy_result()}.
newest(New, Old) ->
    maps:fold(
        fun(To, R = #{at := At}, Acc) ->
            case maps:find(To, Acc) of
                {ok, #{at := Known}} when Known >= At -> Acc;
                _ -> Acc#{To => R}
            end
        end,
        Old,
        New
    ).

%% A fresh backup verified on this node counts as a success for the dead-man watch here, as of
%% when it was made, so a node that takes over exporting knows when the cluster last had a good
%% backup. A catch-up copy (an older backup fetched) says nothing about that.
note_fresh_backup(#{to := To, kind := replicate, result := ok, created := Created}) when
    To =:= node(), is_integer(Created)
->
    emqx_guard_notify:backup_seen(Created);
note_fresh_backup(_) ->
    ok.
