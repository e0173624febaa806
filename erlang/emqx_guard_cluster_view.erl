%% @doc The cluster part of `emqx ctl guard backup_status': which node exports the scheduled
%% backups, the last fire this node skipped (and who took it), and for every node the backups it
%% holds and the result of the last copy to it. Only text; the facts come from
%% `emqx_guard_cluster:status/0'.
-module(emqx_guard_cluster_view).

-export([status_lines/1]).

%% @doc The lines to print after the scheduler's status (`emqx_guard_scheduler:status/0').
%% Nothing for a node that is alone and never skipped a fire, so a single node's status is as
%% short as before.
-spec status_lines(map()) -> [binary()].
status_lines(Status = #{settings := #{backup_timezone := Zone}}) ->
    Skip = maps:get(last_skip, Status, undefined),
    Running = emqx_guard_emqx:running_nodes(),
    case Running of
        [_] when Skip =:= undefined ->
            [];
        _ ->
            #{responsible := Responsible, nodes := Nodes} = emqx_guard_cluster:status(),
            [cluster_line(length(Running), Responsible)] ++ skip_lines(Skip, Zone) ++
                lists:append([node_lines(N, Zone) || N <- Nodes])
    end;
status_lines(_) ->
    [].

cluster_line(Count, undefined) ->
    text("cluster: ~B running node(s); no running core node, so no scheduled backups", [Count]);
cluster_line(Count, Responsible) ->
    text("cluster: ~B running node(s); scheduled backups are exported by ~ts (the lowest running core node)", [
        Count, Responsible
    ]).

skip_lines(undefined, _Zone) ->
    [];
skip_lines(#{at := At, error := Why} = Skip, Zone) ->
    Instant =
        case maps:get(instant, Skip, undefined) of
            I when is_integer(I) -> I;
            _ -> At
        end,
    [text("last skipped fire here: ~ts; ~ts", [emqx_guard_schedule:format_in_zone(Zone, Instant), Why])].

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
    text("  last copy to it: ok, ~ts from ~ts at ~ts", [File, From, emqx_guard_schedule:format_in_zone(Zone, At)]);
copy_line(#{file := File, from := From, at := At, result := {error, Why}}, Zone) ->
    text("  last copy to it: FAILED, ~ts from ~ts at ~ts: ~ts", [
        File, From, emqx_guard_schedule:format_in_zone(Zone, At), Why
    ]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
