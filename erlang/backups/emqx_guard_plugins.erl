%% @doc EMQX's plugins as the plugins companion (`emqx_guard_companion') and its restore
%% (`emqx_guard_restore_plugins') see them: the installed ones (`installed/0', from
%% `emqx_guard_emqx:plugins/0') and where EMQX stores a plugin's config (`config_dir/1'). Calls
%% EMQX only through the door.
-module(emqx_guard_plugins).

-export([installed/0, config_dir/1]).

-export_type([plugin/0]).

%% One installed plugin: `NAME-VSN' (EMQX's package name), its name, whether it is enabled
%% (`config_status') and running (`running_status').
-type plugin() :: #{name_vsn := binary(), name := binary(), enabled := boolean(), running := boolean()}.

%% @doc The installed plugins; none where this EMQX has no plugins (or does not answer).
-spec installed() -> [plugin()].
installed() ->
    case emqx_guard_emqx:plugins() of
        {ok, List} -> [plugin(P) || P <- List];
        unavailable -> []
    end.

plugin(#{name := Name, rel_vsn := Vsn} = P) ->
    N = emqx_guard_call:binary(Name),
    #{
        name_vsn => <<N/binary, "-", (emqx_guard_call:binary(Vsn))/binary>>,
        name => N,
        enabled => maps:get(config_status, P, disabled) =:= enabled,
        running => lists:member(maps:get(running_status, P, stopped), [running, <<"running">>])
    }.

%% @doc Where EMQX stores the config of the plugin Name, saved through the dashboard or the API:
%% `<data_dir>/plugins/Name' (EMQX 5.7+).
-spec config_dir(binary()) -> file:filename().
config_dir(Name) ->
    filename:join([emqx_guard_emqx:data_dir(), "plugins", emqx_guard_call:text(Name)]).
