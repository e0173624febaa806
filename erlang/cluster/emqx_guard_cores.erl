%% @doc The running core nodes of the cluster as the plugin counts them (the nodes that export,
%% copy, elect and restore): the running nodes (`emqx_guard_emqx:running_nodes/0') that are also
%% cores of the cluster (`emqx_guard_emqx:core_nodes/0'). Where EMQX does not say which nodes are
%% cores, every running node counts as one, except this node when it is a replicant
%% (`emqx_guard_emqx:node_role/0'). Calls EMQX only through the door.
-module(emqx_guard_cores).

-export([running/0]).

%% @doc The running core nodes, sorted (module doc).
-spec running() -> [node()].
running() ->
    Running = emqx_guard_emqx:running_nodes(),
    case emqx_guard_emqx:core_nodes() of
        {ok, Cores} ->
            [N || N <- Running, lists:member(N, Cores)];
        unavailable ->
            case emqx_guard_emqx:node_role() of
                core -> Running;
                replicant -> Running -- [node()]
            end
    end.
