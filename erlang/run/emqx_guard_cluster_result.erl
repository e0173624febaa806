%% @doc The newest backup result known in the cluster, as this node's scheduler follows it: a
%% result another node tells (`emqx_guard_election:announce_result/1', an
%% `emqx_guard_outcome:summary/1') is kept when it is newer than the one known
%% (`emqx_guard_run_state:cluster_result/2'), logged, and a good one counts for this node's
%% dead-man watch. The alarms at start follow the newest result too (`restore_alarms/2').
-module(emqx_guard_cluster_result).

-include_lib("kernel/include/logger.hrl").

-export([is_result/1, adopt/2, restore_alarms/2, pulled/2]).

%% @doc Whether Term is a backup result as another node tells it.
-spec is_result(term()) -> boolean().
is_result(#{result := Result, node := Node, started_at := At}) ->
    (Result =:= ok orelse Result =:= failed) andalso is_atom(Node) andalso is_integer(At);
is_result(_) ->
    false.

%% @doc Keeps Result in Saved when it is newer than the newest known (logged; a good one counts
%% for the dead-man watch): `{newer, Saved1}', else `{known, Saved}'.
-spec adopt(emqx_guard_outcome:outcome(), emqx_guard_run_state:run_state()) ->
    {newer | known, emqx_guard_run_state:run_state()}.
adopt(Result, Saved) ->
    case emqx_guard_run_state:cluster_result(Result, Saved) of
        {newer, Saved1} ->
            ?LOG_INFO((maps:with([node, result, file, error, instant], Result))#{msg => emqx_guard_cluster_backup_result}),
            ok = seen(Result),
            {newer, Saved1};
        {known, _} ->
            {known, Saved}
    end.

%% @doc The alarms at start follow the newest backup result known. Alone, that is what this node
%% recorded; in a cluster the other nodes are asked first (`emqx_guard_election:survey/0', from a
%% process of its own: the answer is cast to Scheduler as `{pulled, Newest}', for `pulled/2'),
%% so a node that was away does not raise an alarm for a failure the cluster has made good.
-spec restore_alarms(emqx_guard_run_state:run_state(), pid()) -> ok.
restore_alarms(Saved, Scheduler) ->
    case emqx_guard_emqx:running_nodes() -- [node()] of
        [] ->
            emqx_guard_alarm:restore(alarm_view(Saved));
        _Others ->
            _ = spawn(fun() -> gen_server:cast(Scheduler, {pulled, maps:get(newest_result, emqx_guard_election:survey())}) end),
            ok
    end.

%% @doc The newest result the other nodes knew at start: adopted when it is newer, then the
%% backup alarm restored from the newest known.
-spec pulled(term(), emqx_guard_run_state:run_state()) -> emqx_guard_run_state:run_state().
pulled(Newest, Saved0) ->
    Saved =
        case is_result(Newest) of
            true -> element(2, adopt(Newest, Saved0));
            false -> Saved0
        end,
    ok = emqx_guard_alarm:restore(alarm_view(Saved)),
    Saved.

%% The newest result as the alarm needs it: this node's own last run in full (its off-site part
%% too) when it is the newest.
alarm_view(Saved = #{last_run := LastRun}) ->
    case emqx_guard_run_state:newest(Saved) of
        #{started_at := At, node := Node} when Node =:= node(), is_map(LastRun), map_get(started_at, LastRun) =:= At ->
            LastRun;
        Newest ->
            Newest
    end.

%% A good backup made anywhere in the cluster counts for this node's dead-man watch.
seen(#{result := ok, started_at := At}) -> emqx_guard_notify:backup_seen(At);
seen(_) -> ok.
