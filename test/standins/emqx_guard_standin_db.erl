%% @doc TEST-ONLY: the data a stand-in EMQX node holds, what its export writes and its import
%% merges into: the built-in database's tables (records `{Tab, Key, ...}', keyed by their second
%% element, as mnesia's backup items are) and the cluster config's root keys (each with its hocon
%% text). Kept in persistent_term, so every process of the node sees it (no mnesia here).
%%
%% Not an EMQX module: the stand-ins `emqx_mgmt_data_backup' (export and import) and
%% `emqx_mgmt_auth' (API keys, the bootstrap file) share it, and tests read and change it.
-module(emqx_guard_standin_db).

-export([rows/1, write/1, delete/2, tables/0, config/0, set_config/2, reset/0]).

-define(KEY(Tab), {?MODULE, tab, Tab}).
-define(TABS, {?MODULE, tabs}).
-define(CONF, {?MODULE, config}).

%% @doc The records of Tab, sorted by key.
-spec rows(atom()) -> [tuple()].
rows(Tab) ->
    [R || {_, R} <- lists:sort(maps:to_list(persistent_term:get(?KEY(Tab), #{})))].

%% @doc Writes Record (`{Tab, Key, ...}'), replacing the one with its key: an upsert.
-spec write(tuple()) -> ok.
write(Record) when tuple_size(Record) >= 2 ->
    Tab = element(1, Record),
    persistent_term:put(?KEY(Tab), (persistent_term:get(?KEY(Tab), #{}))#{element(2, Record) => Record}),
    persistent_term:put(?TABS, lists:usort([Tab | tables()])).

%% @doc Deletes the record of Tab with Key.
-spec delete(atom(), term()) -> ok.
delete(Tab, Key) ->
    persistent_term:put(?KEY(Tab), maps:remove(Key, persistent_term:get(?KEY(Tab), #{}))).

%% @doc The tables written to since `reset/0'.
-spec tables() -> [atom()].
tables() ->
    persistent_term:get(?TABS, []).

%% @doc The cluster config: root key => its value as hocon text.
-spec config() -> #{binary() => binary()}.
config() ->
    persistent_term:get(?CONF, #{}).

%% @doc Sets a root key of the cluster config (its value as hocon text).
-spec set_config(binary(), binary()) -> ok.
set_config(Key, Value) ->
    persistent_term:put(?CONF, (config())#{Key => Value}).

%% @doc Empties every table and the config.
-spec reset() -> ok.
reset() ->
    [persistent_term:erase(?KEY(T)) || T <- tables()],
    _ = persistent_term:erase(?TABS),
    _ = persistent_term:erase(?CONF),
    ok.
