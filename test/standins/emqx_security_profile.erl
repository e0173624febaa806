%% @doc TEST-ONLY stand-in for `emqx_security_profile' (EMQX 6.2+: the node's security profile,
%% from `EMQX_SECURITY_PROFILE', `legacy' by default).
%%
%% EMQX API: `profile() -> legacy | hardened'.
%% Test-control API (stand-in only, persistent_term): `set(Profile)', `reset()' (back to `legacy').
-module(emqx_security_profile).

-export([profile/0, set/1, reset/0]).

-define(KEY, {?MODULE, profile}).

-spec profile() -> legacy | hardened.
profile() ->
    persistent_term:get(?KEY, legacy).

%% @doc Stand-in only: this node's profile from now on.
-spec set(legacy | hardened) -> ok.
set(Profile) when Profile =:= legacy; Profile =:= hardened ->
    persistent_term:put(?KEY, Profile).

%% @doc Stand-in only: back to `legacy'.
-spec reset() -> ok.
reset() ->
    _ = persistent_term:erase(?KEY),
    ok.
