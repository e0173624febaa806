%% @doc The plugins companion of a backup: what EMQX's export leaves out (emqx/emqx#15102), saved
%% beside each export by every run, so that a restore brings the plugins back too.
%%
%% For the export `emqx-export-….tar.gz' it is `emqx-export-….plugins.tgz' in the same directory:
%% a name that is no EMQX export name (EMQX lists and imports `*.tar.gz' only, and
%% `emqx_guard_core:is_export_name/1' refuses it), so it is never listed, counted, pruned or
%% imported as a backup. A gzip'd tar holding:
%% <ul>
%% <li>`manifest.json': the export it belongs to, when and where it was made, and each installed
%%     plugin: `name_vsn', `enabled', `running', its package's `sha256' and `size', `package'
%%     (its path in the archive, or null when larger than the limit: then recorded by name and
%%     hash only, `too_large'), `config_files';</li>
%% <li>`packages/NAME-VSN.tar.gz': the packages as EMQX keeps them in its `install_dir';</li>
%% <li>`configs/NAME/…': each plugin's config files as EMQX stores them
%%     (`<data_dir>/plugins/NAME/', `config.hocon' from 5.7 on);</li>
%% <li>`emqx_guard/settings.term': this plugin's own settings (schedule, retention, channels,
%%     off-site destination, secrets included), whichever EMQX stores plugin configs where.</li>
%% </ul>
%% It is written under a temporary name made 0600 before any byte (it holds secrets, as the
%% export does), read back (every entry listed, the manifest parsed, each package's SHA-256
%% checked against it), then renamed. Retention deletes it with its export (`drop/2'), and each
%% new companion removes the companions whose export is gone, so none is left alone.
%% The largest package carried is the setting `backup_plugins_max_size' (default 100 MiB).
-module(emqx_guard_companion).

-include_lib("kernel/include/logger.hrl").

-export([name/1, path/1, is_name/1, beside/2, make/1, drop/2, also/2, read/1, package/2, entry/2, sha256/1]).

-define(SUFFIX, ".plugins.tgz").
-define(MAX_PACKAGE, 100 * 1024 * 1024).
-define(CHUNK, 1024 * 1024).

%% @doc The companion's name of the export Name.
-spec name(binary()) -> binary().
name(Export) ->
    <<(binary:part(Export, 0, byte_size(Export) - byte_size(<<".tar.gz">>)))/binary, ?SUFFIX>>.

%% @doc Whether Name is the companion name of an export name (`emqx-export-….plugins.tgz').
-spec is_name(binary() | string()) -> boolean().
is_name(Name0) ->
    Name = unicode:characters_to_binary(Name0),
    Size = byte_size(Name) - byte_size(<<?SUFFIX>>),
    Size > 0 andalso binary:part(Name, Size, byte_size(<<?SUFFIX>>)) =:= <<?SUFFIX>> andalso
        emqx_guard_core:is_export_name(<<(binary:part(Name, 0, Size))/binary, ".tar.gz">>).

%% @doc The SHA-256 (lowercase hex) of the file at Path, read in chunks.
-spec sha256(file:filename_all()) -> {ok, binary()} | {error, term()}.
sha256(Path) ->
    case sha256_file(Path) of
        {ok, Sha, _Size} -> {ok, Sha};
        {error, _} = Error -> Error
    end.

%% @doc The companion's path of the export at ExportPath.
-spec path(file:filename_all()) -> binary().
path(ExportPath) ->
    P = unicode:characters_to_binary(ExportPath),
    filename:join(filename:dirname(P), name(filename:basename(P))).

%% @doc The run's step after a verified export (Outcome with its `path'): the companion made,
%% reported as the `plugins' step; one that cannot be made is a warning of the run, the backup
%% stays good.
-spec beside(emqx_guard_outcome:outcome(), emqx_guard_steps:report()) -> emqx_guard_outcome:outcome().
beside(O = #{path := Path}, Report) ->
    case make(Path) of
        {ok, #{file := File, plugins := Plugins}} ->
            Report({done, plugins, #{file => File, count => length(Plugins),
                                     too_large => [N || #{name_vsn := N, too_large := true} <- Plugins]}}),
            O#{companion => File};
        {error, Why} ->
            Line = <<"plugins companion not made: ", (emqx_guard_outcome:format_error(Why))/binary>>,
            Report({warned, plugins, #{warning => Line}}),
            emqx_guard_outcome:warn(O, Line)
    end.

%% @doc Makes the companion of the export at ExportPath (see the module doc).
-spec make(file:filename_all()) -> {ok, #{file := binary(), path := binary(), plugins := [map()]}} | {error, {atom(), term()}}.
make(ExportPath) ->
    Final = path(ExportPath),
    Dir = filename:dirname(Final),
    Tmp = filename:join(Dir, <<".emqx_guard_companion-", (filename:basename(Final))/binary>>),
    try
        {Plugins, Files} = collect(),
        Manifest = #{
            <<"format">> => 1,
            <<"export">> => filename:basename(unicode:characters_to_binary(ExportPath)),
            <<"made_at_ms">> => erlang:system_time(millisecond),
            <<"node">> => atom_to_binary(node()),
            <<"plugins">> => Plugins,
            <<"guard_settings">> => <<"emqx_guard/settings.term">>
        },
        Settings = iolist_to_binary(io_lib:format("~tp.~n", [emqx_guard_settings:get()])),
        Entries = [{"manifest.json", emqx_guard_json:encode(Manifest)}, {"emqx_guard/settings.term", Settings} | Files],
        ok = file:write_file(Tmp, <<>>),
        ok = file:change_mode(Tmp, 8#600),
        ok = erl_tar:create(unicode:characters_to_list(Tmp), Entries, [compressed]),
        ok = check(Tmp, Entries, Plugins),
        ok = file:rename(Tmp, Final),
        ok = sweep(Dir),
        {ok, #{file => filename:basename(Final), path => Final, plugins => [maps:from_list([{binary_to_atom(K), V} || {K, V} <- maps:to_list(P)]) || P <- Plugins]}}
    catch
        Class:Reason ->
            _ = file:delete(Tmp),
            {error, {companion_failed, #{class => Class, reason => Reason}}}
    end.

%% The installed plugins (`emqx_guard_plugins:installed/0'), each with its package and config
%% files as archive entries `{NameInArchive, File}'.
collect() ->
    Installed = emqx_guard_plugins:installed(),
    InstallDir =
        case emqx_guard_emqx:plugin_install_dir() of
            {ok, D} -> D;
            unavailable -> undefined
        end,
    Max = maps:get(backup_plugins_max_size, emqx_guard_settings:get(), ?MAX_PACKAGE),
    Pairs = [plugin(P, InstallDir, Max) || P <- Installed],
    {[M || {M, _} <- Pairs], lists:append([F || {_, F} <- Pairs])}.

plugin(#{name_vsn := NV, name := Name, enabled := E, running := R}, InstallDir, Max) ->
    Package = filename:join(emqx_guard_call:text(InstallDir), <<NV/binary, ".tar.gz">>),
    {Sha, Size} =
        case InstallDir =/= undefined andalso sha256_file(Package) of
            {ok, S, Bytes} -> {S, Bytes};
            _ -> {null, null}
        end,
    TooLarge = is_integer(Size) andalso Size > Max,
    InArchive = <<"packages/", NV/binary, ".tar.gz">>,
    PackageEntry = [{binary_to_list(InArchive), emqx_guard_call:text(Package)} || Sha =/= null, not TooLarge],
    ConfDir = emqx_guard_plugins:config_dir(Name),
    Confs = [{binary_to_list(<<"configs/", Name/binary, "/", (list_to_binary(F))/binary>>), filename:join(ConfDir, F)}
             || F <- lists:sort(filelib:wildcard("*", ConfDir)), filelib:is_regular(filename:join(ConfDir, F))],
    {#{<<"name_vsn">> => NV, <<"name">> => Name, <<"enabled">> => E, <<"running">> => R,
       <<"sha256">> => Sha, <<"size">> => Size, <<"too_large">> => TooLarge,
       <<"package">> => case PackageEntry of [] -> null; _ -> InArchive end,
       <<"config_files">> => [list_to_binary(A) || {A, _} <- Confs]},
     PackageEntry ++ Confs}.

%% Read back: every entry there, the manifest as written, each package's hash as recorded.
check(Tmp, Entries, Plugins) ->
    {ok, Names} = erl_tar:table(unicode:characters_to_list(Tmp), [compressed]),
    [] = [N || {N, _} <- Entries] -- Names,
    {ok, _} = read(Tmp),
    lists:foreach(
        fun
            (#{<<"package">> := null}) -> ok;
            (#{<<"package">> := In, <<"sha256">> := Sha}) -> {ok, Sha} = hex_sha256(entry(Tmp, In))
        end,
        Plugins
    ).

hex_sha256({ok, Bin}) -> {ok, hex(crypto:hash(sha256, Bin))};
hex_sha256(Error) -> Error.

%% @doc Deletes the companion of the export Name in Dir, if there is one (retention, with its export).
-spec drop(file:filename_all(), binary()) -> ok.
drop(Dir, Export) ->
    _ = file:delete(filename:join(Dir, name(Export))),
    ok.

%% @doc Does for the companion of the export at ExportPath what Fun did for the export (the
%% off-site upload: `emqx_guard_offsite'), when there is one; a failure is logged, never the
%% export's failure.
-spec also(file:filename_all(), fun((binary()) -> {ok, term()} | {error, term()})) -> ok.
also(ExportPath, Fun) ->
    Companion = path(ExportPath),
    case filelib:is_regular(Companion) of
        false ->
            ok;
        true ->
            case Fun(Companion) of
                {ok, _} -> ok;
                {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_companion_not_copied, file => filename:basename(Companion),
                                               reason => emqx_guard_redact:term(Why)})
            end
    end.

%% The companions whose export is gone: only names that are a companion of an export name, on
%% the top level (never an upload, a hand-made file, or `ns/').
sweep(Dir) ->
    Companions = filelib:wildcard("emqx-export-*" ?SUFFIX, emqx_guard_call:text(Dir)),
    Exports = [{C, lists:flatten(string:replace(C, ?SUFFIX, ".tar.gz", trailing))} || C <- Companions],
    _ = [file:delete(filename:join(Dir, C)) || {C, E} <- Exports,
         emqx_guard_core:is_export_name(E), not filelib:is_regular(filename:join(Dir, E))],
    ok.

%% @doc The manifest of the companion at Path, `{ok, Map}' (binary keys), or why not.
-spec read(file:filename_all()) -> {ok, map()} | {error, term()}.
read(Path) ->
    case entry(Path, <<"manifest.json">>) of
        {ok, Json} ->
            case emqx_guard_json:decode(Json) of
                {ok, #{<<"format">> := 1, <<"plugins">> := Ps} = M} when is_list(Ps) -> {ok, M};
                _ -> {error, bad_manifest}
            end;
        Error ->
            Error
    end.

%% @doc The package of NameVsn in the companion at Path, checked against the manifest's SHA-256:
%% `{ok, Bin}', `{error, not_carried}', `{error, {hash_mismatch, #{expected, found}}}'.
-spec package(file:filename_all(), map()) -> {ok, binary()} | {error, term()}.
package(_Path, #{<<"package">> := null}) ->
    {error, not_carried};
package(Path, #{<<"package">> := In, <<"sha256">> := Sha}) ->
    case entry(Path, In) of
        {ok, Bin} ->
            case hex(crypto:hash(sha256, Bin)) of
                Sha -> {ok, Bin};
                Found -> {error, {hash_mismatch, #{expected => Sha, found => Found}}}
            end;
        Error ->
            Error
    end.

%% @doc One entry of the companion at Path, read into memory.
-spec entry(file:filename_all(), binary()) -> {ok, binary()} | {error, term()}.
entry(Path, In) ->
    Want = binary_to_list(In),
    case erl_tar:extract(unicode:characters_to_list(Path), [compressed, memory, {files, [Want]}]) of
        {ok, [{Want, Bin}]} -> {ok, Bin};
        {ok, []} -> {error, {missing_entry, In}};
        {error, _} = Error -> Error
    end.

sha256_file(File) ->
    case file:open(File, [read, raw, binary]) of
        {ok, Fd} ->
            try
                hash_loop(Fd, crypto:hash_init(sha256), 0)
            after
                file:close(Fd)
            end;
        {error, _} = Error ->
            Error
    end.

hash_loop(Fd, Ctx, N) ->
    case file:read(Fd, ?CHUNK) of
        {ok, Bin} -> hash_loop(Fd, crypto:hash_update(Ctx, Bin), N + byte_size(Bin));
        eof -> {ok, hex(crypto:hash_final(Ctx)), N};
        {error, _} = Error -> Error
    end.

%% Lowercase hex (OTP 25 has no `binary:encode_hex/2').
hex(Bin) ->
    string:lowercase(binary:encode_hex(Bin)).
