%% @doc The cluster part of `emqx ctl guard backup_status': which node exports the scheduled
%% backups and why not the lower core nodes, the newest backup result known in the cluster
%% (which node, when, ok or the error), the last fire this node skipped (and which node exported
%% it, with its result), and for every node the backups it holds and the result of the last copy
%% to it: gathered once as facts (`facts/1', part of `emqx_guard_report:status/0'), written as
%% lines for people (`lines/2'). Asks every running node (`node_report/0',
%% `emqx_guard_proto_v1') from the caller's process, except a node with no protocol version in
%% common with this one: that one is shown as a version mismatch, with the versions it speaks.
-module(emqx_guard_cluster_view).

-export([facts/1, lines/2, status/0]).
%% What other nodes call here (`emqx_guard_proto_v1').
-export([node_report/0]).

-define(RPC_TIMEOUT, 5000).

%% @doc The cluster part of `guard backup_status' as facts (JSON-ready, binary keys) from the
%% scheduler's status (`emqx_guard_scheduler:status/0'): `last_skip', the last fire this node
%% skipped (`null' when none; with `exported_by' when the cluster's newest result is that
%% fire's), and `cluster', `null' for a node that is alone, else who exports (`election'), the
%% cluster's newest backup (`last_backup') and every node with its backups and the last copy to
%% it (`nodes'). Zone is the schedule's, for the instants' ISO 8601 text.
-spec facts(map()) -> #{binary() => term()}.
facts(Status = #{settings := #{backup_timezone := Zone}}) ->
    Skip = maps:get(last_skip, Status, undefined),
    Last = maps:get(cluster_run, Status, undefined),
    Running = emqx_guard_emqx:running_nodes(),
    Cluster =
        case Running of
            [_] ->
                null;
            _ ->
                #{election := Election, nodes := Nodes} = status(),
                #{
                    <<"running_nodes">> => length(Running),
                    <<"election">> => election_facts(Election),
                    <<"last_backup">> => result_facts(Last, Zone),
                    <<"nodes">> => [node_facts(N, Zone) || N <- Nodes]
                }
        end,
    #{<<"last_skip">> => skip_facts(Skip, Last, Zone), <<"cluster">> => Cluster}.

%% @doc The lines of the cluster facts (`facts/1') for people, instants in Zone. For a node that
%% is alone only the last fire it skipped (a run was still going), if any, so a single node's
%% status is as short as before.
-spec lines(#{binary() => term()}, binary()) -> [binary()].
lines(#{<<"last_skip">> := Skip, <<"cluster">> := null}, Zone) ->
    skip_lines(Skip, Zone);
lines(#{<<"last_skip">> := Skip, <<"cluster">> := Cluster}, Zone) ->
    #{<<"running_nodes">> := Count, <<"election">> := Election, <<"last_backup">> := Last, <<"nodes">> := Nodes} = Cluster,
    [cluster_line(Count, Election)] ++ last_lines(Last, Zone) ++ skip_lines(Skip, Zone) ++
        lists:append([node_lines(N, Zone) || N <- Nodes]).

%% Who exports the scheduled backups, and why not the core nodes that cannot. A lowest core
%% with no protocol version in common is not asked: left to export (`emqx_guard_election').
election_facts(#{responsible := Responsible, peers := Peers, excluded := Excluded0, cores := Cores}) ->
    Excluded = [#{<<"node">> => N, <<"why">> => emqx_guard_outcome:format_error(Why)} || {N, Why} <- Excluded0],
    Base = #{<<"exporter">> => null_if_undefined(Responsible), <<"cores">> => length(Cores), <<"left_to_export">> => false},
    case Peers of
        #{Responsible := Peer} when not is_integer(Peer) ->
            Base#{<<"left_to_export">> => true,
                  <<"excluded">> => [#{<<"node">> => Responsible, <<"why">> => emqx_guard_outcome:format_error(Peer)} | Excluded]};
        _ ->
            Base#{<<"excluded">> => Excluded}
    end.

cluster_line(Count, #{<<"exporter">> := Exporter, <<"left_to_export">> := true, <<"excluded">> := Excluded}) ->
    text("cluster: ~B running node(s); ~ts, the lowest core node, is left to export scheduled backups (~ts)", [
        Count, Exporter, excluded_text(Excluded)
    ]);
cluster_line(Count, #{<<"exporter">> := null, <<"cores">> := 0}) ->
    text("cluster: ~B running node(s); no running core node, so no scheduled backups", [Count]);
cluster_line(Count, #{<<"exporter">> := null, <<"excluded">> := Excluded}) ->
    text("cluster: ~B running node(s); no core node can export scheduled backups (~ts)", [Count, excluded_text(Excluded)]);
cluster_line(Count, #{<<"exporter">> := Exporter, <<"excluded">> := []}) ->
    text("cluster: ~B running node(s); ~ts exports scheduled backups (the lowest core node where the plugin works)", [
        Count, Exporter
    ]);
cluster_line(Count, #{<<"exporter">> := Exporter, <<"excluded">> := Excluded}) ->
    text("cluster: ~B running node(s); ~ts exports scheduled backups (~ts)", [Count, Exporter, excluded_text(Excluded)]).

%% As `emqx_guard_outcome:format_excluded/1': `node: why; node: why'.
excluded_text(Excluded) ->
    iolist_to_binary(lists:join(<<"; ">>, [text("~ts: ~ts", [N, Why]) || #{<<"node">> := N, <<"why">> := Why} <- Excluded])).

%% A backup result (`emqx_guard_outcome:summary/1') as facts.
result_facts(undefined, _Zone) ->
    null;
result_facts(#{started_at := At, node := Node, result := Result} = R, Zone) ->
    (instant(<<"started_at">>, At, Zone))#{
        <<"node">> => Node,
        <<"result">> => Result,
        <<"file">> => maps:get(file, R, null),
        <<"size">> => maps:get(size, R, null),
        <<"error">> => maps:get(error, R, null)
    }.

%% The newest backup result known in the cluster.
last_lines(null, _Zone) ->
    [];
last_lines(#{<<"started_at_ms">> := At, <<"node">> := Node} = Last, Zone) ->
    [text("last backup in the cluster: ~ts on ~ts: ~ts", [emqx_guard_render:in_zone(Zone, At), Node, result_text(Last)])].

%% A skipped fire, and who exported it when the cluster's newest result is that fire's.
skip_facts(undefined, _Last, _Zone) ->
    null;
skip_facts(#{started_at := At, error := Why} = Skip, Last, Zone) ->
    Instant = maps:get(instant, Skip, At),
    By =
        case Last of
            #{instant := Instant, node := Node} when Node =/= node() -> result_facts(Last, Zone);
            _ -> null
        end,
    (instant(<<"instant">>, Instant, Zone))#{<<"why">> => Why, <<"exported_by">> => By}.

skip_lines(null, _Zone) ->
    [];
skip_lines(#{<<"instant_ms">> := Instant, <<"why">> := Why, <<"exported_by">> := By}, Zone) ->
    What =
        case By of
            null -> Why;
            #{<<"node">> := Node} -> text("exported by ~ts: ~ts", [Node, result_text(By)])
        end,
    [text("last skipped fire here: ~ts; ~ts", [emqx_guard_render:in_zone(Zone, Instant), What])].

result_text(#{<<"result">> := ok, <<"file">> := File, <<"size">> := Size}) when File =/= null, Size =/= null ->
    text("ok, ~ts (~ts)", [File, emqx_guard_render:size(Size)]);
result_text(#{<<"result">> := ok, <<"file">> := File}) when File =/= null ->
    text("ok, ~ts", [File]);
result_text(#{<<"result">> := ok}) ->
    <<"ok">>;
result_text(#{<<"result">> := failed, <<"error">> := null}) ->
    <<"FAILED: unknown error">>;
result_text(#{<<"result">> := failed, <<"error">> := Error}) ->
    text("FAILED: ~ts", [Error]).

node_facts(#{node := Node, running := false, last_copy := Copy}, Zone) ->
    #{<<"node">> => Node, <<"running">> => false, <<"last_copy">> => copy_facts(Copy, Zone)};
node_facts(#{node := Node, role := Role, backups := Backups, last_copy := Copy}, Zone) ->
    {Names, Error} =
        case Backups of
            L when is_list(L) -> {L, null};
            %% a reason here, or another node's line (`node_report/0')
            {error, Why} -> {null, emqx_guard_outcome:format_error(Why)}
        end,
    #{<<"node">> => Node, <<"running">> => true, <<"role">> => Role, <<"this_node">> => Node =:= node(),
      <<"backups">> => Names, <<"backups_error">> => Error, <<"last_copy">> => copy_facts(Copy, Zone)}.

node_lines(#{<<"node">> := Node, <<"running">> := false, <<"last_copy">> := Copy}, Zone) ->
    [text("node ~ts (not running)", [Node]), copy_line(Copy, Zone)];
node_lines(#{<<"node">> := Node, <<"role">> := Role, <<"this_node">> := Here, <<"backups">> := Backups} = N, Zone) ->
    This =
        case Here of
            true -> <<", this node">>;
            false -> <<>>
        end,
    Head =
        case Backups of
            [] -> text("node ~ts (~ts~ts): no backups", [Node, Role, This]);
            [_ | _] -> text("node ~ts (~ts~ts): ~B backup(s), newest first:", [Node, Role, This, length(Backups)]);
            null -> text("node ~ts (~ts~ts): backups unknown: ~ts", [Node, Role, This, maps:get(<<"backups_error">>, N)])
        end,
    Names =
        case Backups of
            L when is_list(L) -> [text("  ~ts", [B]) || B <- L];
            null -> []
        end,
    [Head | Names] ++ [copy_line(maps:get(<<"last_copy">>, N), Zone)].

copy_facts(undefined, _Zone) ->
    null;
copy_facts(#{file := File, from := From, at := At, result := Result}, Zone) ->
    {R, Error} =
        case Result of
            ok -> {ok, null};
            {error, Why} -> {failed, Why}
        end,
    (instant(<<"at">>, At, Zone))#{<<"file">> => File, <<"from">> => From, <<"result">> => R, <<"error">> => Error}.

copy_line(null, _Zone) ->
    <<"  last copy to it: none">>;
copy_line(#{<<"file">> := File, <<"from">> := From, <<"at_ms">> := At, <<"result">> := ok}, Zone) ->
    text("  last copy to it: ok, ~ts from ~ts at ~ts", [File, From, emqx_guard_render:in_zone(Zone, At)]);
copy_line(#{<<"file">> := File, <<"from">> := From, <<"at_ms">> := At, <<"error">> := Why}, Zone) ->
    text("  last copy to it: FAILED, ~ts from ~ts at ~ts: ~ts", [File, From, emqx_guard_render:in_zone(Zone, At), Why]).

null_if_undefined(undefined) -> null;
null_if_undefined(V) -> V.

instant(Key, Ms, Zone) ->
    emqx_guard_report:instant(Key, Ms, Zone).

%% @doc Every running node's role, backups and the last copy to it (also for nodes that are not
%% running now but were copied to), and the election as it stands (`emqx_guard_election:survey/0':
%% the node responsible for the next scheduled instant, the cores that cannot export and why).
-spec status() -> #{election := emqx_guard_election:survey(), nodes := [map()]}.
status() ->
    Election = #{peers := Peers} = emqx_guard_election:survey(),
    Running = emqx_guard_emqx:running_nodes(),
    Cores = emqx_guard_cores:running(),
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
            {not_asked, {no_answer, Why}} -> {error, {no_report, {error, {erpc, Why}}}};
            {not_asked, Why} -> {error, Why};
            _ -> {error, {no_report, Error}}
        end,
    #{node => Node, running => true, role => Role, backups => Backups, last_copy => LastCopy}.

%% @doc What this node holds: its role, its backups (names, newest first; why not as a line, as
%% protocol version 1 carries it) and the copy results it knows. Called on every node by
%% `status/0'.
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
