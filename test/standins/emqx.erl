%% @doc TEST-ONLY stand-in for the few functions of EMQX's `emqx' module that emqx_guard uses.
%%
%% EMQX API: `data_dir() -> string()' (EMQX's data directory, e.g. "/opt/emqx/data"),
%% `running_nodes() -> [node()]', `cluster_nodes(cores | running | all | stopped) -> [node()]'.
%%
%% Test-control API (stand-in only), all stored in persistent_term so that every process sees it:
%% <ul>
%% <li>`set_data_dir(Dir)': the directory `data_dir/0' returns (as a charlist). Until it is set,
%%     `data_dir/0' returns `"data"' (relative, as EMQX run from its install dir).</li>
%% <li>`set_nodes(#{running => [node()], stopped => [node()], cores => [node()]})': a fixed
%%     cluster view (any key left out keeps its default, see below); `all' is running ++ stopped.</li>
%% <li>`reset()': back to the defaults.</li>
%% </ul>
%% Default cluster view (no `set_nodes/1'), as a real cluster of connected nodes would answer:
%% running = this node plus every connected node (`nodes()'), sorted; cores = those of them whose
%% `mria_rlog:role()' (asked on that node, see the `mria_rlog' stand-in) is `core' (a node that
%% does not answer within a second is left out); stopped = [].  So a test builds a cluster by
%% connecting nodes and makes a replicant with `mria_rlog:set_role(replicant)' on that node.
-module(emqx).

-export([data_dir/0, running_nodes/0, cluster_nodes/1]).
-export([set_data_dir/1, set_nodes/1, reset/0]).

-define(DIR_KEY, {?MODULE, data_dir}).
-define(NODES_KEY, {?MODULE, nodes}).

-spec data_dir() -> string().
data_dir() ->
    persistent_term:get(?DIR_KEY, "data").

-spec running_nodes() -> [node()].
running_nodes() ->
    cluster_nodes(running).

-spec cluster_nodes(cores | running | all | stopped) -> [node()].
cluster_nodes(all) ->
    cluster_nodes(running) ++ cluster_nodes(stopped);
cluster_nodes(Which) when Which =:= cores; Which =:= running; Which =:= stopped ->
    maps:get(Which, cluster_view()).

%% @doc Stand-in only: sets what `data_dir/0' returns.
-spec set_data_dir(file:filename_all()) -> ok.
set_data_dir(Dir) ->
    persistent_term:put(?DIR_KEY, unicode:characters_to_list(Dir)).

%% @doc Stand-in only: sets the cluster view; keys left out keep their defaults.
-spec set_nodes(#{running => [node()], stopped => [node()], cores => [node()]}) -> ok.
set_nodes(Nodes) when is_map(Nodes) ->
    persistent_term:put(?NODES_KEY, maps:merge(default_nodes(), Nodes)).

%% @doc Stand-in only: forgets the data dir and the cluster view.
-spec reset() -> ok.
reset() ->
    _ = persistent_term:erase(?DIR_KEY),
    _ = persistent_term:erase(?NODES_KEY),
    ok.

cluster_view() ->
    case persistent_term:get(?NODES_KEY, undefined) of
        undefined -> connected_view();
        View -> View
    end.

default_nodes() ->
    connected_view().

connected_view() ->
    Running = lists:usort([node() | nodes()]),
    #{running => Running, cores => [N || N <- Running, role(N) =:= core], stopped => []}.

role(Node) when Node =:= node() ->
    mria_rlog:role();
role(Node) ->
    try
        erpc:call(Node, mria_rlog, role, [], 1000)
    catch
        _:_ -> unknown
    end.
