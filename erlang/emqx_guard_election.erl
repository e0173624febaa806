%% @doc Which node of the cluster exports a scheduled backup (work in progress: the rule only).
-module(emqx_guard_election).

-export([responsible/0]).

%% @doc The node that exports scheduled backups: the lowest-sorted running core node
%% (`hd(lists:sort(RunningCores))', as EMQX's own once-per-cluster jobs pick it), or `undefined'
%% when no core node runs. The one home of this rule.
-spec responsible() -> node() | undefined.
responsible() ->
    case emqx_guard_emqx:running_core_nodes() of
        [Node | _] -> Node;
        [] -> undefined
    end.
