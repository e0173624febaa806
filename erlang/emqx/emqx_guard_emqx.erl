%% @doc The ONE module of emqx_guard that calls EMQX, prometheus.erl (in EMQX's release) and mria
%% (EMQX_CONTRACT.md, shared; what EMQX's source says about each call: docs/design.md, "The door
%% to EMQX"). Each function is only: whether the EMQX function is there (`exported/3',
%% `code:ensure_loaded/1' + `erlang:function_exported/3', never a version number), the call,
%% guarded (`emqx_guard_call': an exception is logged, never raised into the caller), the shape
%% of EMQX's answer checked, and the fallback its doc states. What an answer means (the alarm
%% replaced, the running cores, an install's steps) is decided by the module using it.
-module(emqx_guard_emqx).

-include_lib("kernel/include/logger.hrl").

-import(emqx_guard_call, [exported/3, guarded/2, checked/3, escape_tilde/1, text/1]).

-export([register_command/2, unregister_command/0, print/2, usage/1]).
-export([data_dir/0, backup_dir/0]).
-export([export_supported/0, export_out_dir_supported/0, export/2]).
-export([import/2, import_error_words/1, release/0, security_profile/0, reload_bootstrap_keys/0]).
-export([activate_alarm/3, deactivate_alarm/2, active_alarms/0]).
-export([node_role/0, running_nodes/0, core_nodes/0]).
-export([register_collector/1, deregister_collector/1, metric_family/4]).
-export([publish_sys/2]).
-export([plugins/0, plugin_install_dir/0, plugin_step/2]).

-define(CMD, guard).

%% Why an export failed (`emqx_guard_export_watch' says what each means).
-type export_error() :: {export_unavailable, mfa()} | emqx_guard_export_watch:error().
%% What EMQX's import answered: the errors it collected while it applied the rest.
-type import_result() :: #{config_errors := map(), db_errors := map()}.
%% Why an import did not run or failed as a whole: missing in this EMQX, or EMQX's reason (an
%% exception inside EMQX as `{Class, Reason}').
-type import_error() :: {import_unavailable, mfa()} | {import_error, term()}.
%% One step of a plugin's install, as `emqx ctl plugins install|start' take them.
-type plugin_step() :: ensure_installed | ensure_enabled | ensure_started.

-export_type([export_error/0, import_result/0, import_error/0, plugin_step/0]).

%%---- emqx_ctl ----------------------------------------------------------------------------------

%% @doc Registers `Mod:Fun/1' as the `emqx ctl guard' command (registering again overwrites). The
%% registration lives in EMQX's table, beyond the caller: `unregister_command/0' on stop.
%% Without emqx_ctl it only logs.
-spec register_command(module(), atom()) -> ok.
register_command(Mod, Fun) when is_atom(Mod), is_atom(Fun) ->
    case exported(emqx_ctl, register_command, 3) of
        true ->
            guarded(register_command, fun() -> emqx_ctl:register_command(?CMD, {Mod, Fun}, []) end);
        false ->
            ?LOG_WARNING(#{msg => emqx_guard_ctl_unavailable, action => register_command}),
            ok
    end.

%% @doc Removes the `guard' command (EMQX does it asynchronously).
-spec unregister_command() -> ok.
unregister_command() ->
    case exported(emqx_ctl, unregister_command, 1) of
        true -> guarded(unregister_command, fun() -> emqx_ctl:unregister_command(?CMD) end);
        false -> ok
    end.

%% @doc Prints to the caller's group leader (the `emqx ctl' terminal) through `emqx_ctl:print/2',
%% or `io:format/2' where it is missing. Fmt must be a constant format: every piece of data goes
%% through `~ts' / `~tp' in Args. A bad format is logged, not raised.
-spec print(io:format(), [term()]) -> ok.
print(Fmt, Args) ->
    case exported(emqx_ctl, print, 2) of
        true -> guarded(print, fun() -> emqx_ctl:print(Fmt, Args) end);
        false -> guarded(print, fun() -> io:format(Fmt, Args) end)
    end.

%% @doc Prints a usage listing as EMQX does (`emqx_ctl:usage/1': the command column padded, then
%% `# Description'). emqx_ctl hands the text to io:format/1 as a format, so every `~' is escaped
%% first. Without emqx_ctl the same layout is printed with io:format.
-spec usage([{unicode:chardata(), unicode:chardata()}]) -> ok.
usage(Lines) ->
    Plain = [{text(Cmd), text(Desc)} || {Cmd, Desc} <- Lines],
    case exported(emqx_ctl, usage, 1) of
        true ->
            Escaped = [{escape_tilde(C), escape_tilde(D)} || {C, D} <- Plain],
            guarded(usage, fun() -> emqx_ctl:usage(Escaped) end);
        false ->
            guarded(usage, fun() -> io:format("~ts", [emqx_guard_call:usage_text(Plain)]) end)
    end.

%%---- Directories -------------------------------------------------------------------------------

%% @doc EMQX's data directory (`emqx:data_dir()'); without it the `emqx' application's `data_dir'
%% environment value, else `"data"'. Always absolute: a relative one (a tarball install has
%% `"data"') is resolved against EMQX's working directory.
-spec data_dir() -> file:filename().
data_dir() ->
    Dir =
        case exported(emqx, data_dir, 0) andalso checked(data_dir, fun() -> emqx:data_dir() end, fun is_text/1) of
            {ok, [_ | _] = EmqxDir} ->
                EmqxDir;
            {ok, EmqxDir} when is_binary(EmqxDir), EmqxDir =/= <<>> ->
                EmqxDir;
            _ ->
                case application:get_env(emqx, data_dir) of
                    {ok, EnvDir} when is_list(EnvDir); is_binary(EnvDir) -> EnvDir;
                    _ -> "data"
                end
        end,
    filename:absname(text(Dir)).

%% @doc Where EMQX writes its exports: `<data_dir>/backup'.
-spec backup_dir() -> file:filename().
backup_dir() ->
    filename:join(data_dir(), "backup").

%%---- Export and import -------------------------------------------------------------------------

%% @doc True when this EMQX has the data export (`emqx_mgmt_data_backup:export/0', EMQX 5.1+).
-spec export_supported() -> boolean().
export_supported() ->
    exported(emqx_mgmt_data_backup, export, 0).

%% @doc True when this EMQX's export writes where the option `out_dir' says (EMQX 5.8.5+, told by
%% `emqx_mgmt_data_backup:parse_export_request/1', of the same release); older ones ignore it.
-spec export_out_dir_supported() -> boolean().
export_out_dir_supported() ->
    exported(emqx_mgmt_data_backup, parse_export_request, 1).

%% @doc Runs one EMQX data export (`emqx_mgmt_data_backup:export/1') in a process of its own,
%% linked to the caller and cut off after TimeoutMs (`emqx_guard_export_watch:run/3' says how and
%% what comes back: `{ok, #{filename, size, ...}}', the path absolute, or `{error,
%% export_error()}'). Opts: `out_dir', an existing directory, passed only to an EMQX that
%% supports it (`export_out_dir_supported/0'); `on_event', called in the caller's process with
%% each line EMQX prints and a tick at most once a second. `{error, {export_unavailable, MFA}}'
%% when this EMQX has no export.
-spec export(timeout(), #{out_dir => file:filename_all(), on_event => emqx_guard_export_watch:on_event()}) ->
    {ok, #{filename := binary(), size := non_neg_integer(), atom() => term()}} | {error, export_error()}.
export(TimeoutMs, Opts) ->
    case export_supported() of
        false ->
            {error, {export_unavailable, {emqx_mgmt_data_backup, export, 0}}};
        true ->
            %% `out_dir' as a string: EMQX appends ".tar.gz" to it with `++'
            OutDir =
                case {maps:find(out_dir, Opts), export_out_dir_supported()} of
                    {{ok, Dir}, true} -> #{out_dir => text(Dir)};
                    _ -> #{}
                end,
            OnEvent = maps:get(on_event, Opts, fun(_) -> ok end),
            emqx_guard_export_watch:run(fun(PrintFun) -> call_export(OutDir#{print_fun => PrintFun}) end, TimeoutMs, OnEvent)
    end.

%% Runs inside the export process: never raises.
call_export(Opts) ->
    try emqx_mgmt_data_backup:export(Opts) of
        Value -> {returned, Value}
    catch
        Class:Reason:Stack ->
            ?LOG_WARNING(#{msg => emqx_guard_export_crashed, exception => Class, reason => Reason, stacktrace => Stack}),
            {raised, Class, Reason}
    end.

%% @doc Runs EMQX's data import of Name (a file in `data/backup') in the caller's process, EMQX's
%% progress lines going to PrintFun (EMQX's `print_fun'): `{ok, import_result()}' (the per-key
%% and per-table errors inside: the rest was applied) or `{error, import_error()}' (an exception
%% inside EMQX, logged, or an answer of another shape is `import_error' too).
-spec import(binary(), fun((io:format(), [term()]) -> term())) -> {ok, import_result()} | {error, import_error()}.
import(Name, PrintFun) when is_binary(Name), is_function(PrintFun, 2) ->
    case exported(emqx_mgmt_data_backup, import, 2) of
        false ->
            {error, {import_unavailable, {emqx_mgmt_data_backup, import, 2}}};
        true ->
            try emqx_mgmt_data_backup:import(Name, #{print_fun => PrintFun}) of
                {ok, Result} when is_map(Result) ->
                    {ok, #{config_errors => maps:get(config_errors, Result, #{}), db_errors => maps:get(db_errors, Result, #{})}};
                {error, Reason} ->
                    {error, {import_error, Reason}};
                Other ->
                    {error, {import_error, Other}}
            catch
                Class:Reason:Stack ->
                    ?LOG_ERROR(#{msg => emqx_guard_import_crashed, exception => Class,
                                 reason => emqx_guard_redact:term(Reason), stacktrace => Stack}),
                    {error, {import_error, {Class, Reason}}}
            end
    end.

%% @doc EMQX's own words for an import's Reason (`emqx_mgmt_data_backup:format_error/1'):
%% `{ok, Words}' (text), or `error' without that function (or when it fails).
-spec import_error_words(term()) -> {ok, unicode:chardata()} | error.
import_error_words(Reason) ->
    case exported(emqx_mgmt_data_backup, format_error, 1) of
        true -> checked(format_error, fun() -> emqx_mgmt_data_backup:format_error(Reason) end, fun is_text/1);
        false -> error
    end.

%% @doc The release this node runs (`emqx_release:version()', never the `emqx' app's vsn, and
%% `edition()'): `#{version := <<"5.8.6">>, edition := ce | ee}', or `unknown' without
%% `emqx_release' (or when it fails).
-spec release() -> #{version := binary(), edition := ce | ee} | unknown.
release() ->
    Shape = fun({V, E}) -> is_text(V) andalso (E =:= ce orelse E =:= ee); (_) -> false end,
    case
        exported(emqx_release, version, 0) andalso exported(emqx_release, edition, 0) andalso
            checked(release, fun() -> {emqx_release:version(), emqx_release:edition()} end, Shape)
    of
        {ok, {Version, Edition}} -> #{version => emqx_guard_call:binary(Version), edition => Edition};
        _ -> unknown
    end.

%% @doc This node's security profile (`emqx_security_profile:profile()'), `unknown' before 6.2.
-spec security_profile() -> legacy | hardened | unknown.
security_profile() ->
    Shape = fun(P) -> P =:= legacy orelse P =:= hardened end,
    case exported(emqx_security_profile, profile, 0) andalso
             checked(security_profile, fun() -> emqx_security_profile:profile() end, Shape) of
        {ok, Profile} -> Profile;
        _ -> unknown
    end.

%% @doc Writes the keys of `api_key.bootstrap_file' again, as EMQX does at start
%% (`emqx_mgmt_auth:try_init_bootstrap_file/0'): `ok'; `unavailable' where this EMQX has no such
%% function; `{error, bootstrap_keys_not_written}' when EMQX answers otherwise or the call fails.
-spec reload_bootstrap_keys() -> ok | unavailable | {error, bootstrap_keys_not_written}.
reload_bootstrap_keys() ->
    case exported(emqx_mgmt_auth, try_init_bootstrap_file, 0) of
        true ->
            case checked(bootstrap_keys, fun() -> emqx_mgmt_auth:try_init_bootstrap_file() end, fun(R) -> R =:= ok end) of
                {ok, ok} -> ok;
                error -> {error, bootstrap_keys_not_written}
            end;
        false ->
            unavailable
    end.

%%---- Alarms ------------------------------------------------------------------------------------

%% @doc Raises the EMQX alarm Name with Details and Message (`emqx_alarm:activate/3', or
%% `activate/2' without the message): `ok', `already_active' (EMQX leaves an active alarm as it
%% is), or `error' (logged) when EMQX refuses it, fails or has no emqx_alarm.
-spec activate_alarm(atom(), map(), binary()) -> ok | already_active | error.
activate_alarm(Name, Details, Message) when is_atom(Name), is_map(Details), is_binary(Message) ->
    Activate =
        case {exported(emqx_alarm, activate, 3), exported(emqx_alarm, activate, 2)} of
            {true, _} -> fun() -> emqx_alarm:activate(Name, Details, Message) end;
            {false, true} -> fun() -> emqx_alarm:activate(Name, Details) end;
            {false, false} -> fun() -> {error, alarm_unavailable} end
        end,
    case checked(activate_alarm, Activate, fun(R) -> R =:= ok orelse R =:= {error, already_existed} end) of
        {ok, ok} -> ok;
        {ok, {error, already_existed}} -> already_active;
        error -> error
    end.

%% @doc Clears the EMQX alarm Name with Message, kept in EMQX's alarm history
%% (`emqx_alarm:deactivate/3', or `deactivate/1'). Clearing one that is not active is fine;
%% without emqx_alarm (or when it fails) it only logs.
-spec deactivate_alarm(atom(), binary()) -> ok.
deactivate_alarm(Name, Message) when is_atom(Name), is_binary(Message) ->
    Deactivate =
        case {exported(emqx_alarm, deactivate, 3), exported(emqx_alarm, deactivate, 1)} of
            {true, _} -> fun() -> emqx_alarm:deactivate(Name, #{}, Message) end;
            {false, true} -> fun() -> emqx_alarm:deactivate(Name) end;
            {false, false} -> fun() -> {error, alarm_unavailable} end
        end,
    _ = checked(deactivate_alarm, Deactivate, fun(R) -> R =:= ok orelse R =:= {error, not_found} end),
    ok.

%% @doc The active EMQX alarms (`emqx_alarm:get_alarms(activated)'), each a map with at least
%% `name'; `unavailable' without that function (or when it fails).
-spec active_alarms() -> {ok, [#{name := term(), atom() => term()}]} | unavailable.
active_alarms() ->
    case exported(emqx_alarm, get_alarms, 1) andalso checked(get_alarms, fun() -> emqx_alarm:get_alarms(activated) end, fun is_list/1) of
        {ok, Alarms} -> {ok, [A || #{name := _} = A <- Alarms]};
        _ -> unavailable
    end.

%%---- Cluster -----------------------------------------------------------------------------------

%% @doc This node's role, `mria_rlog:role()'; `core' where mria_rlog is missing or fails.
-spec node_role() -> core | replicant.
node_role() ->
    case exported(mria_rlog, role, 0) andalso checked(node_role, fun() -> mria_rlog:role() end, fun is_atom/1) of
        {ok, replicant} -> replicant;
        _ -> core
    end.

%% @doc The running nodes of the cluster, sorted, this node included: `emqx:running_nodes()'.
%% Without it (or when it fails) only this node.
-spec running_nodes() -> [node()].
running_nodes() ->
    case exported(emqx, running_nodes, 0) andalso nodes_of(running_nodes, fun() -> emqx:running_nodes() end) of
        {ok, Running} -> lists:usort([node() | Running]);
        _ -> [node()]
    end.

%% @doc The cluster's core nodes, running or not: `emqx:cluster_nodes(cores)'; `unavailable'
%% without it (or when it fails).
-spec core_nodes() -> {ok, [node()]} | unavailable.
core_nodes() ->
    case exported(emqx, cluster_nodes, 1) andalso nodes_of(cluster_nodes, fun() -> emqx:cluster_nodes(cores) end) of
        {ok, Cores} -> {ok, Cores};
        _ -> unavailable
    end.

nodes_of(Call, F) ->
    case checked(Call, F, fun is_list/1) of
        {ok, Nodes} -> {ok, [N || N <- Nodes, is_atom(N)]};
        error -> error
    end.

%%---- Prometheus (prometheus.erl, in EMQX's release) --------------------------------------------

%% @doc Registers Collector (a module with `collect_mf/2' and `deregister_cleanup/1') in
%% prometheus.erl's `default' registry, the one `GET /api/v5/prometheus/stats' renders.
%% Registering again changes nothing; without prometheus.erl nothing happens.
-spec register_collector(module()) -> ok.
register_collector(Collector) when is_atom(Collector) ->
    case exported(prometheus_registry, register_collector, 2) of
        true -> guarded(register_collector, fun() -> prometheus_registry:register_collector(default, Collector) end);
        false -> ok
    end.

%% @doc Removes Collector from the `default' registry (prometheus.erl then calls its
%% `deregister_cleanup/1'). Removing one that is not registered is fine.
-spec deregister_collector(module()) -> ok.
deregister_collector(Collector) when is_atom(Collector) ->
    case exported(prometheus_registry, deregister_collector, 2) of
        true -> guarded(deregister_collector, fun() -> prometheus_registry:deregister_collector(default, Collector) end);
        false -> ok
    end.

%% @doc One metric family as prometheus.erl's text format renders it
%% (`prometheus_model_helpers:create_mf/4'): Name, Help, Type and the samples `{Labels, Value}',
%% Labels `{Name, Value}' binaries. `error' (logged) when prometheus.erl is missing or refuses it.
-spec metric_family(binary(), binary(), counter | gauge, [{[{binary(), binary()}], number()}]) -> {ok, term()} | error.
metric_family(Name, Help, Type, Samples) ->
    case exported(prometheus_model_helpers, create_mf, 4) of
        true -> checked(metric_family, fun() -> prometheus_model_helpers:create_mf(Name, Help, Type, Samples) end, fun is_tuple/1);
        false -> error
    end.

%%---- $SYS --------------------------------------------------------------------------------------

%% @doc Publishes Payload on `$SYS/brokers/<node>/guard/<Event>' as EMQX publishes its own `$SYS'
%% messages (`emqx_sys'): `emqx_broker:safe_publish/1' of `emqx_message:make(emqx_sys, Topic,
%% Payload)' with the flag `sys' (QoS 0, not retained). Without EMQX's broker it only logs.
-spec publish_sys(binary(), binary()) -> ok.
publish_sys(Event, Payload) when is_binary(Event), is_binary(Payload) ->
    Topic = iolist_to_binary(["$SYS/brokers/", atom_to_binary(node(), utf8), "/guard/", Event]),
    case
        exported(emqx_broker, safe_publish, 1) andalso exported(emqx_message, make, 3) andalso
            exported(emqx_message, set_flags, 2)
    of
        true ->
            guarded(publish_sys, fun() ->
                _ = emqx_broker:safe_publish(emqx_message:set_flags(#{sys => true}, emqx_message:make(emqx_sys, Topic, Payload))),
                ok
            end);
        false ->
            ?LOG_INFO(#{msg => emqx_guard_broker_unavailable, action => publish_sys, topic => Topic}),
            ok
    end.

%%---- Plugins -----------------------------------------------------------------------------------

%% @doc The installed plugins as `emqx_plugins:list()' gives them, each a map with at least
%% `name' and `rel_vsn' (also `config_status', `running_status'); `unavailable' where this EMQX
%% has no plugins (or the call fails).
-spec plugins() -> {ok, [#{name := term(), rel_vsn := term(), atom() => term()}]} | unavailable.
plugins() ->
    case exported(emqx_plugins, list, 0) andalso checked(plugins, fun() -> emqx_plugins:list() end, fun is_list/1) of
        {ok, List} -> {ok, [P || #{name := _, rel_vsn := _} = P <- List]};
        _ -> unavailable
    end.

%% @doc Where EMQX keeps the plugin packages, absolute (`emqx_plugins:install_dir()'), or
%% `unavailable'.
-spec plugin_install_dir() -> {ok, file:filename()} | unavailable.
plugin_install_dir() ->
    case exported(emqx_plugins, install_dir, 0) andalso checked(install_dir, fun() -> emqx_plugins:install_dir() end, fun is_text/1) of
        {ok, Dir} -> {ok, filename:absname(text(Dir))};
        _ -> unavailable
    end.

%% @doc One step of an install of the package `NameVsn.tar.gz' in `plugin_install_dir/0':
%% `emqx_plugins:Step(NameVsn)'. `ok', or `{error, Reason}' with EMQX's reason (an exception as
%% `{Class, Reason}', another answer as itself; `plugins_unavailable' without that function).
-spec plugin_step(plugin_step(), binary()) -> ok | {error, term()}.
plugin_step(Step, NameVsn) when is_binary(NameVsn) ->
    case lists:member(Step, [ensure_installed, ensure_enabled, ensure_started]) andalso exported(emqx_plugins, Step, 1) of
        true ->
            try emqx_plugins:Step(text(NameVsn)) of
                ok -> ok;
                {error, Reason} -> {error, Reason};
                Other -> {error, Other}
            catch
                Class:Reason -> {error, {Class, Reason}}
            end;
        false ->
            {error, plugins_unavailable}
    end.

is_text(T) ->
    is_binary(T) orelse is_list(T).
