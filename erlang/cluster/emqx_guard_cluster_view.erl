%% @doc The cluster part of `emqx ctl guard backup_status': which node exports the scheduled
%% backups and why not the lower core nodes, the newest backup result known in the cluster (which node, when, ok or the error),
%% the last fire this node skipped (and which node exported it, with its result), and for every
%% node the backups it holds and the result of the last copy to it. Asks every running node
%% (`node_report/0', `emqx_guard_proto_v1') from the caller's process, except a node with no
%% protocol version in common with this one: that one is shown as a version mismatch, with the
%% versions it speaks.
-module(emqx_guard_cluster_view).

-export([status_lines/1, status/0]).
%% What other nodes call here (`emqx_guard_proto_v1').
-export([node_report/0]).

-define(RPC_TIMEOUT, 5000).

%% @doc The lines to print after the scheduler's status (`emqx_guard_scheduler:status/0').
%% For a node that is alone only the last fire it skipped (a run was still going), if any, so a
%% single node's status is as short as before.
-spec status_lines(map()) -> [binary()].
status_lines(Status = #{settings := #{backup_timezone := Zone}}) ->
    Skip = maps:get(last_skip, Status, undefined),
    Last = maps:get(cluster_run, Status, undefined),
    Running = emqx_guard_emqx:running_nodes(),
    case Running of
        [_] ->
            skip_lines(Skip, Last, Zone);
        _ ->
            #{election := Election, nodes := Nodes} = status(),
            [cluster_line(length(Running), Election)] ++ last_lines(Last, Zone) ++ skip_lines(Skip, Last, Zone) ++
                lists:append([node_lines(N, Zone) || N <- Nodes])
    end;
status_lines(_) ->
    [].

%% Who exports the scheduled backups, and why not the core nodes that cannot. A lowest core
%% with no protocol version in common is not asked: left to export (`emqx_guard_election').
cluster_line(Count, #{responsible := Responsible, peers := Peers, excluded := Excluded}) when
    is_map_key(Responsible, Peers), not is_integer(map_get(Responsible, Peers))
->
    text("cluster: ~B running node(s); ~ts, the lowest core node, is left to export scheduled backups (~ts)", [
        Count, Responsible, emqx_guard_outcome:format_excluded([{Responsible, maps:get(Responsible, Peers)} | Excluded])
    ]);
cluster_line(Count, #{responsible := undefined, cores := []}) ->
    text("cluster: ~B running node(s); no running core node, so no scheduled backups", [Count]);
cluster_line(Count, #{responsible := undefined, excluded := Excluded}) ->
    text("cluster: ~B running node(s); no core node can export scheduled backups (~ts)", [
        Count, emqx_guard_outcome:format_excluded(Excluded)
    ]);
cluster_line(Count, #{responsible := Responsible, excluded := []}) ->
    text("cluster: ~B running node(s); ~ts exports scheduled backups (the lowest core node where the plugin works)", [
        Count, Responsible
    ]);
cluster_line(Count, #{responsible := Responsible, excluded := Excluded}) ->
    text("cluster: ~B running node(s); ~ts exports scheduled backups (~ts)", [
        Count, Responsible, emqx_guard_outcome:format_excluded(Excluded)
    ]).

%% The newest backup result known in the cluster.
last_lines(undefined, _Zone) ->
    [];
last_lines(#{started_at := At, node := Node} = Last, Zone) ->
    [text("last backup in the cluster: ~ts on ~ts: ~ts", [emqx_guard_render:in_zone(Zone, At), Node, result_text(Last)])].

%% A skipped fire, and who exported it when the cluster's newest result is that fire's.
skip_lines(undefined, _Last, _Zone) ->
    [];
skip_lines(#{started_at := At, error := Why} = Skip, Last, Zone) ->
    Instant = maps:get(instant, Skip, At),
    What =
        case Last of
            #{instant := Instant, node := By} when By =/= node() -> text("exported by ~ts: ~ts", [By, result_text(Last)]);
            _ -> Why
        end,
    [text("last skipped fire here: ~ts; ~ts", [emqx_guard_render:in_zone(Zone, Instant), What])].

result_text(#{result := ok} = R) ->
    case R of
        #{file := File, size := Size} -> text("ok, ~ts (~ts)", [File, emqx_guard_render:size(Size)]);
        #{file := File} -> text("ok, ~ts", [File]);
        _ -> <<"ok">>
    end;
result_text(#{result := failed} = R) ->
    text("FAILED: ~ts", [maps:get(error, R, <<"unknown error">>)]).

node_lines(#{node := Node, running := false, last_copy := Copy}, Zone) ->
    [text("node ~ts (not running)", [Node]), copy_line(Copy, Zone)];
node_lines(#{node := Node, role := Role, backups := Backups, last_copy := Copy}, Zone) ->
    This =
        case Node =:= node() of
            true -> <<", this node">>;
            false -> <<>>
        end,
    Head =
        case Backups of
            [] -> text("node ~ts (~ts~ts): no backups", [Node, Role, This]);
            [_ | _] -> text("node ~ts (~ts~ts): ~B backup(s), newest first:", [Node, Role, This, length(Backups)]);
            {error, Why} -> text("node ~ts (~ts~ts): backups unknown: ~ts", [Node, Role, This, Why])
        end,
    Names =
        case Backups of
            L when is_list(L) -> [text("  ~ts", [B]) || B <- L];
            _ -> []
        end,
    [Head | Names] ++ [copy_line(Copy, Zone)].

copy_line(undefined, _Zone) ->
    <<"  last copy to it: none">>;
copy_line(#{file := File, from := From, at := At, result := ok}, Zone) ->
    text("  last copy to it: ok, ~ts from ~ts at ~ts", [File, From, emqx_guard_render:in_zone(Zone, At)]);
copy_line(#{file := File, from := From, at := At, result := {error, Why}}, Zone) ->
    text("  last copy to it: FAILED, ~ts from ~ts at ~ts: ~ts", [
        File, From, emqx_guard_render:in_zone(Zone, At), Why
    ]).

%% @doc Every running node's role, backups and the last copy to it (also for nodes that are not
%% running now but were copied to), and the election as it stands (`emqx_guard_election:survey/0':
%% the node responsible for the next scheduled instant, the cores that cannot export and why).
-spec status() -> #{election := emqx_guard_election:survey(), nodes := [map()]}.
status() ->
    Election = #{peers := Peers} = emqx_guard_election:survey(),
    Running = emqx_guard_emqx:running_nodes(),
    Cores = emqx_guard_emqx:running_core_nodes(),
    %% a node with no version in common (or that did not answer which) is not asked
    NotAsked = maps:filter(fun(_, Peer) -> not is_integer(Peer) end, Peers),
    Asked = [N || N <- Running, not is_map_key(N, NotAsked)],
    Answers = maps:merge(
        maps:from_list(lists:zip(Asked, emqx_guard_proto_v1:node_report(Asked, ?RPC_TIMEOUT))),
        maps:map(fun(_, Why) -> {not_asked, Why} end, NotAsked)
    ),
    Reports = [{N, maps:get(N, Answers)} || N <- Running],
    Copies = lists:foldl(
        fun
            ({_, {ok, #{copies := C}}}, Acc) -> emqx_guard_copies:newest(C, Acc);
            (_, Acc) -> Acc
        end,
        emqx_guard_copies:results(),
        Reports
    ),
    Nodes = [node_view(N, Reply, lists:member(N, Cores), maps:get(N, Copies, undefined)) || {N, Reply} <- Reports],
    Gone = [
        #{node => N, running => false, last_copy => C}
     || {N, C} <- lists:sort(maps:to_list(Copies)), not lists:member(N, Running)
    ],
    #{election => Election, nodes => Nodes ++ Gone}.

node_view(Node, {ok, Report}, _IsCore, LastCopy) ->
    maps:merge(maps:with([role, backups], Report), #{node => Node, running => true, last_copy => LastCopy});
node_view(Node, Error, IsCore, LastCopy) ->
    Role =
        case IsCore of
            true -> core;
            false -> replicant
        end,
    Backups =
        case Error of
            {not_asked, {no_answer, Why}} -> {error, text("no answer: ~0tP", [{error, {erpc, Why}}, 8])};
            {not_asked, Why} -> {error, emqx_guard_outcome:format_error(Why)};
            _ -> {error, text("no answer: ~0tP", [Error, 8])}
        end,
    #{node => Node, running => true, role => Role, backups => Backups, last_copy => LastCopy}.

%% @doc What this node holds: its role, its backups (names, newest first) and the copy results
%% it knows. Called on every node by `status/0'.
-spec node_report() -> #{role := core | replicant, backups := [binary()] | {error, binary()}, copies := map()}.
node_report() ->
    Backups =
        case emqx_guard_backups:names() of
            {error, Why} -> {error, emqx_guard_outcome:format_error(Why)};
            Names -> Names
        end,
    #{
        role => emqx_guard_emqx:node_role(),
        backups => Backups,
        copies => emqx_guard_copies:results()
    }.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
