%% @doc Test helper: settings written as the plugin config the dashboard keeps (binary keys,
%% durations as text such as `24h', recipients as one comma-separated line), to call
%% `emqx_guard_app:on_config_changed/2' with what EMQX would pass.
-module(emqx_guard_test_config).

-export([of_settings/1]).

-spec of_settings(map()) -> #{binary() => term()}.
of_settings(Settings) ->
    maps:fold(fun(K, V, Acc) -> Acc#{atom_to_binary(K) => value(K, V)} end, #{}, Settings).

value(K, Seconds) when K =:= backup_catchup; K =:= export_timeout -> emqx_guard_render:duration_s(Seconds);
value(notify_to, Addresses) -> iolist_to_binary(lists:join(<<", ">>, Addresses));
value(_K, V) -> V.
