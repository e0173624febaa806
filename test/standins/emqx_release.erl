%% @doc TEST-ONLY stand-in for `emqx_release' (EMQX's release facts).
%%
%% EMQX API: `version() -> string()' (the release, e.g. "5.3.2"; never the `emqx' app's vsn),
%% `edition() -> ce | ee'.
%% Test-control API (stand-in only, persistent_term): `set(Version, Edition)', `reset()'
%% (back to "5.3.2", `ce', the node the fixture of EMQX 5.3.2 was taken on).
-module(emqx_release).

-export([version/0, edition/0, set/2, reset/0]).

-define(KEY, {?MODULE, release}).

-spec version() -> string().
version() ->
    element(1, persistent_term:get(?KEY, {"5.3.2", ce})).

-spec edition() -> ce | ee.
edition() ->
    element(2, persistent_term:get(?KEY, {"5.3.2", ce})).

%% @doc Stand-in only: this node's release from now on.
-spec set(string(), ce | ee) -> ok.
set(Version, Edition) when is_list(Version), (Edition =:= ce orelse Edition =:= ee) ->
    persistent_term:put(?KEY, {Version, Edition}).

%% @doc Stand-in only: back to 5.3.2 open source.
-spec reset() -> ok.
reset() ->
    _ = persistent_term:erase(?KEY),
    ok.
