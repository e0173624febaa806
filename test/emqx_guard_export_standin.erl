%% @doc Test helper: which EMQX the `emqx_mgmt_data_backup' stand-in plays on this node. As built
%% for the tests it is EMQX 5.8.5 and later (`out_dir' honoured); `as_before_5_8_5/0' loads it
%% compiled with `EMQX_BEFORE_5_8_5' (EMQX 5.1 to 5.8.4: no `parse_export_request/1', `out_dir'
%% ignored) in its place, `as_built/0' brings the usual one back. Its mode and counters live in
%% persistent_term and stay as they are.
-module(emqx_guard_export_standin).

-export([as_before_5_8_5/0, as_built/0]).

-spec as_before_5_8_5() -> ok.
as_before_5_8_5() ->
    Src = filename:join([filename:dirname(?FILE), "standins", "emqx_mgmt_data_backup.erl"]),
    {ok, Mod, Bin} = compile:file(Src, [binary, {d, 'EMQX_BEFORE_5_8_5'}, return_errors]),
    _ = code:purge(Mod),
    {module, Mod} = code:load_binary(Mod, Src, Bin),
    false = erlang:function_exported(Mod, parse_export_request, 1),
    ok.

-spec as_built() -> ok.
as_built() ->
    _ = code:purge(emqx_mgmt_data_backup),
    _ = code:delete(emqx_mgmt_data_backup),
    _ = code:purge(emqx_mgmt_data_backup),
    {module, _} = code:load_file(emqx_mgmt_data_backup),
    true = erlang:function_exported(emqx_mgmt_data_backup, parse_export_request, 1),
    ok.
