%% @doc The door to EMQX, its restore half: EMQX's data import, the release this node runs, and
%% the API keys of the bootstrap file. `emqx_guard_emqx' (the first half: commands, directories,
%% the export, alarms, cluster, Prometheus, `$SYS') was full at the size limit, so the door is the
%% `erlang/emqx/' folder, these two modules, and nothing else of the plugin calls EMQX. The same
%% rules hold here (EMQX_CONTRACT.md): a function some EMQX lacks is looked up with
%% `emqx_guard_call:exported/3' before it is called, and nothing raises into the caller.
%%
%% What EMQX's source says about these calls (apps/emqx_management, 5.1 to 6.3):
%% <ul>
%% <li>`emqx_mgmt_data_backup:import(FileName, #{print_fun => F})' takes a bare name inside
%%     `data/backup', refuses on a replicant (`not_core_node'), a bad name, a missing file, a
%%     tarball whose entries are not all under its own name, a META.hocon of another edition
%%     (Enterprise on open source) or a newer version, all before anything changes; then it
%%     merges: config root keys are updated one by one, table records are written over the
%%     node's (mnesia's `restore/2' with `keep_tables'), nothing is deleted; an error in one
%%     key or table is collected (`config_errors', `db_errors') while the rest is applied, and
%%     the answer is still `{ok, _}'. It prints its progress through `print_fun' (the CLI's
%%     lines) and has no lock and no timeout.</li>
%% <li>`emqx_release:version()' is the release (never the `emqx' app's vsn),
%%     `emqx_release:edition()' `ce' or `ee'.</li>
%% <li>API keys live in the replicated table `emqx_app', the keys of `api_key.bootstrap_file'
%%     (the EMQX Operator's on Kubernetes) too, written at start by
%%     `emqx_mgmt_auth:try_init_bootstrap_file/0': it force-writes each key of the file, deleting
%%     other records holding it. An import writes the backup's `emqx_app' records like any
%%     table's, so it can replace a bootstrap key's secret or leave two records with one key
%%     (which EMQX's `find_by_api_key/1' then does not find): calling it again after the import
%%     puts the file's keys back (`reload_bootstrap_keys/0').</li>
%% <li>Plugins (`emqx_plugins'): `list()' gives each installed plugin's `name', `rel_vsn',
%%     `config_status' (`enabled' | `disabled') and `running_status'; its package
%%     `NAME-VSN.tar.gz' is kept in `install_dir()'; a config saved through the dashboard or the
%%     API is stored in `data/plugins/NAME/config.hocon' (5.7+; EMQX's `emqx_plugins_pinned' says
%%     so). A package put into `install_dir()' is installed with `ensure_installed(NameVsn)',
%%     then `ensure_enabled/1' and `ensure_started/1', as `emqx ctl plugins install|start' do.
%%     From 6.3 an install needs `emqx ctl plugins allow NAME-VSN' first (pinned to `sha256:'
%%     under the hardened profile); an install EMQX refuses for that is `not_allowed' here, told
%%     by its reason naming `allow' (the reason's exact term was not found in the source read
%%     here).</li>
%% </ul>
-module(emqx_guard_emqx_restore).

-include_lib("kernel/include/logger.hrl").

-import(emqx_guard_call, [exported/3, checked/3]).

-export([import/2, release/0, reload_bootstrap_keys/0]).
-export([plugins/0, plugin_install_dir/0, plugin_config_dir/1, install_plugin/2]).

-export_type([import_result/0, import_error/0]).

%% What EMQX's import answered: the errors it collected while it applied the rest.
-type import_result() :: #{config_errors := #{term() => term()}, db_errors := #{term() => term()}}.
%% Why an import did not run or failed as a whole: missing in this EMQX, or EMQX's reason with
%% its own words for it (`emqx_mgmt_data_backup:format_error/1').
-type import_error() ::
    {import_unavailable, mfa()}
    | {import_error, #{reason := term(), words := binary()}}.

%%--------------------------------------------------------------------
%% Import
%%--------------------------------------------------------------------

%% @doc Runs EMQX's data import of Name (a file in `data/backup') in the caller's process, EMQX's
%% progress lines going to PrintFun (`fun(Format, Args)', as EMQX's `print_fun'). What EMQX
%% answers: `{ok, import_result()}' (its per-key and per-table errors inside: the rest was
%% applied), or `{error, import_error()}' (an exception inside EMQX is such an error too).
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
                    {error, {import_error, #{reason => Reason, words => words(Reason)}}};
                Other ->
                    {error, {import_error, #{reason => Other, words => emqx_guard_call:binary(Other)}}}
            catch
                Class:Reason:Stack ->
                    ?LOG_ERROR(#{msg => emqx_guard_import_crashed, exception => Class,
                                 reason => emqx_guard_redact:term(Reason), stacktrace => Stack}),
                    {error, {import_error, #{reason => {Class, Reason}, words => words(Reason)}}}
            end
    end.

%% EMQX's own words for an import's reason, or the term printed short.
words(Reason) ->
    Said =
        case exported(emqx_mgmt_data_backup, format_error, 1) of
            true -> checked(format_error, fun() -> emqx_mgmt_data_backup:format_error(Reason) end, fun(_) -> true end);
            false -> error
        end,
    Text =
        case Said of
            {ok, Words} -> Words;
            error -> Reason
        end,
    case io_lib:printable_unicode_list(Text) orelse is_binary(Text) of
        true -> string:trim(unicode:characters_to_binary(Text));
        false -> unicode:characters_to_binary(io_lib:format("~0tP", [Text, 12]))
    end.

%%--------------------------------------------------------------------
%% Release
%%--------------------------------------------------------------------

%% @doc The release this node runs: `#{version := <<"5.8.6">>, edition := ce | ee}', or
%% `unknown' without `emqx_release' (or when it fails).
-spec release() -> #{version := binary(), edition := ce | ee} | unknown.
release() ->
    case exported(emqx_release, version, 0) andalso exported(emqx_release, edition, 0) of
        true ->
            Got = checked(release, fun() -> {emqx_release:version(), emqx_release:edition()} end, fun
                ({V, E}) -> (is_list(V) orelse is_binary(V)) andalso (E =:= ce orelse E =:= ee);
                (_) -> false
            end),
            case Got of
                {ok, {Version, Edition}} -> #{version => emqx_guard_call:binary(Version), edition => Edition};
                error -> unknown
            end;
        false ->
            unknown
    end.

%%--------------------------------------------------------------------
%% API keys
%%--------------------------------------------------------------------

%% @doc Writes the keys of `api_key.bootstrap_file' again, as EMQX does at start
%% (`emqx_mgmt_auth:try_init_bootstrap_file/0'): `ok', `unavailable' where this EMQX has no such
%% function, `{error, Reason}' when EMQX says so or the call fails.
-spec reload_bootstrap_keys() -> ok | unavailable | {error, term()}.
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

%%--------------------------------------------------------------------
%% Plugins
%%--------------------------------------------------------------------

%% @doc The installed plugins (`emqx_plugins:list()'): `{ok, [#{name_vsn, name, enabled,
%% running}]}', or `unavailable' where this EMQX has no plugins (or the call fails).
-spec plugins() -> {ok, [#{name_vsn := binary(), name := binary(), enabled := boolean(), running := boolean()}]} | unavailable.
plugins() ->
    case exported(emqx_plugins, list, 0) of
        true ->
            case checked(plugins, fun() -> emqx_plugins:list() end, fun is_list/1) of
                {ok, List} -> {ok, [plugin(P) || P = #{name := _, rel_vsn := _} <- List]};
                error -> unavailable
            end;
        false ->
            unavailable
    end.

plugin(#{name := Name, rel_vsn := Vsn} = P) ->
    N = emqx_guard_call:binary(Name),
    #{
        name_vsn => <<N/binary, "-", (emqx_guard_call:binary(Vsn))/binary>>,
        name => N,
        enabled => maps:get(config_status, P, disabled) =:= enabled,
        running => lists:member(maps:get(running_status, P, stopped), [running, <<"running">>])
    }.

%% @doc Where EMQX keeps the plugin packages (`emqx_plugins:install_dir()'), or `unavailable'.
-spec plugin_install_dir() -> {ok, file:filename()} | unavailable.
plugin_install_dir() ->
    case exported(emqx_plugins, install_dir, 0) of
        true ->
            case checked(install_dir, fun() -> emqx_plugins:install_dir() end, fun(D) -> is_list(D) orelse is_binary(D) end) of
                {ok, Dir} -> {ok, filename:absname(emqx_guard_call:text(Dir))};
                error -> unavailable
            end;
        false ->
            unavailable
    end.

%% @doc Where EMQX stores the config of the plugin Name: `<data_dir>/plugins/Name'.
-spec plugin_config_dir(binary()) -> file:filename().
plugin_config_dir(Name) ->
    filename:join([emqx_guard_emqx:data_dir(), "plugins", emqx_guard_call:text(Name)]).

%% @doc Installs the package `NameVsn.tar.gz' already in `plugin_install_dir/0', then enables
%% it and starts it as Opts say (`enable', `start'). `{error, {not_allowed, Detail}}' when EMQX's
%% install gate wants `emqx ctl plugins allow' first; `{error, {install_failed, Detail}}' else.
-spec install_plugin(binary(), #{enable := boolean(), start := boolean()}) -> ok | {error, {atom(), term()}}.
install_plugin(NameVsn, #{enable := Enable, start := Start}) ->
    case exported(emqx_plugins, ensure_installed, 1) of
        false ->
            {error, {install_failed, plugins_unavailable}};
        true ->
            Steps = [{ensure_installed, true}, {ensure_enabled, Enable}, {ensure_started, Start andalso Enable}],
            lists:foldl(
                fun
                    ({Step, true}, ok) -> plugin_step(Step, NameVsn);
                    (_, Result) -> Result
                end,
                ok,
                Steps
            )
    end.

plugin_step(Step, NameVsn) ->
    Result =
        try emqx_plugins:Step(emqx_guard_call:text(NameVsn)) of
            R -> R
        catch
            Class:Reason -> {error, {Class, Reason}}
        end,
    case Result of
        ok ->
            ok;
        {error, Reason1} ->
            Text = string:lowercase(unicode:characters_to_binary(io_lib:format("~0tp", [Reason1]))),
            case binary:match(Text, <<"allow">>) of
                nomatch -> {error, {install_failed, #{step => Step, reason => Reason1}}};
                _ -> {error, {not_allowed, #{step => Step, reason => Reason1}}}
            end;
        Other ->
            {error, {install_failed, #{step => Step, reason => Other}}}
    end.
