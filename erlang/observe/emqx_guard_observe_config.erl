%% @doc The settings of what operators see besides the command lines: `sys_events' (a bool,
%% default true), whether every backup outcome, off-site result, restore and dead-man warning is
%% published on `$SYS/brokers/<node>/guard/<event>' (`emqx_guard_events'). Its type is the generic
%% `bool' (`emqx_guard_value:check/3'); the key lives in the plugin's settings map next to the
%% others (persisted and replicated with them by `emqx_guard_settings' and
%% `emqx_guard_settings_sync').
-module(emqx_guard_observe_config).

-export([keys/0, defaults/0, specs/0, validate/2]).

-type key() :: sys_events.
-export_type([key/0]).

%% @doc Every key, in display order.
-spec keys() -> [key()].
keys() ->
    [K || {K, _, _} <- specs()].

%% @doc The defaults: the events are published.
-spec defaults() -> #{key() => term()}.
defaults() ->
    maps:from_list([{K, D} || {K, _, D} <- specs()]).

%% @doc Every key with its type and default.
-spec specs() -> [{key(), emqx_guard_value:type(), term()}].
specs() ->
    [{sys_events, bool, true}].

%% @doc Validates one setting given as text (or its stored form): the value to store, or why not.
-spec validate(key(), term()) -> {ok, term()} | {error, emqx_guard_settings:error()}.
validate(Key, Raw) ->
    case lists:keyfind(Key, 1, specs()) of
        {Key, Type, _} -> emqx_guard_value:check(Type, atom_to_binary(Key), Raw);
        false -> {error, {unknown_setting, Key}}
    end.
