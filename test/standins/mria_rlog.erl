%% @doc TEST-ONLY stand-in for `mria_rlog:role/0' (EMQX's node role).
%%
%% EMQX API: `role() -> core | replicant'.
%% Test-control API (stand-in only): `set_role(core | replicant)' (persistent_term, default `core'),
%% `reset()'. The `emqx' stand-in asks every connected node's `role/0' to answer which running
%% nodes are cores.
-module(mria_rlog).

-export([role/0, set_role/1, reset/0]).

-define(KEY, {?MODULE, role}).

-spec role() -> core | replicant.
role() ->
    persistent_term:get(?KEY, core).

%% @doc Stand-in only: the role `role/0' returns from now on.
-spec set_role(core | replicant) -> ok.
set_role(Role) when Role =:= core; Role =:= replicant ->
    persistent_term:put(?KEY, Role).

%% @doc Stand-in only: back to `core'.
-spec reset() -> ok.
reset() ->
    _ = persistent_term:erase(?KEY),
    ok.
