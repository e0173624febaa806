%% @doc The plugin steps of a restore: what the backup's plugins companion (`emqx_guard_companion')
%% brings back, after EMQX's import (which restores no plugin).
%% <ul>
%% <li>`facts/1' (the preflight, the dry run): whether the backup carries a companion, each
%%     plugin in it with what it is on this node now (`installed', `missing', `other_version'),
%%     and which of this plugin's own settings differ from now (names only: values may be
%%     secrets);</li>
%% <li>`apply/2' (the restore): each missing plugin's package, checked against the SHA-256 the
%%     companion recorded (a mismatch is refused for that plugin), is put into EMQX's
%%     `install_dir' with its config files in `<data_dir>/plugins/NAME/', then installed,
%%     enabled and started as it was, the steps of `emqx ctl plugins install|start'
%%     (`emqx_guard_emqx:plugin_step/2'). Never around EMQX's install gate (EMQX 6.3+): a package
%%     EMQX wants allowed first (told by its reason naming `allow': the reason's exact term was
%%     not found in EMQX's source) gets the exact `emqx ctl plugins allow' line instead. Plugins installed already are left as they are. Then this plugin's
%%     own settings from the backup are applied on every node (`emqx_guard_settings_sync').</li>
%% </ul>
%% Each line says what was done. A refused or failed install makes the step failed (the restore
%% counts as failed); a plugin waiting for an allow, or carried by name and hash only, is a line
%% to act on.
-module(emqx_guard_restore_plugins).

-export([facts/1, apply/2]).

%% @doc What the companion of the export at ExportPath carries, against this node now.
-spec facts(file:filename_all()) -> map().
facts(ExportPath) ->
    Companion = emqx_guard_companion:path(ExportPath),
    case filelib:is_regular(Companion) andalso emqx_guard_companion:read(Companion) of
        false ->
            #{carried => false};
        {error, Why} ->
            #{carried => false, error => unreadable(Why)};
        {ok, #{<<"plugins">> := Plugins}} ->
            Now = installed(),
            #{carried => true, file => filename:basename(Companion),
              plugins => [(maps:with([<<"name_vsn">>, <<"enabled">>, <<"running">>, <<"too_large">>], P))#{
                              <<"now">> => state(P, Now)} || P <- Plugins],
              settings_differ => [atom_to_binary(K) || K <- maps:keys(settings_changes(Companion))]}
    end.

%% @doc Brings back what the companion of the export at ExportPath carries (module doc): `{ok,
%% Lines}' or `{error, {plugins_failed, Lines}}', each line one plugin's or the settings'.
-spec apply(file:filename_all(), emqx_guard_steps:report()) -> {ok, [binary()]} | {error, {plugins_failed, [binary()]}}.
apply(ExportPath, Report) ->
    Companion = emqx_guard_companion:path(ExportPath),
    case filelib:is_regular(Companion) andalso emqx_guard_companion:read(Companion) of
        false ->
            {ok, [said(Report, <<"no plugins companion beside this backup (made before plugins were saved, or by hand): "
                                  "nothing to install">>)]};
        {error, Why} ->
            {error, {plugins_failed, [said(Report, unreadable(Why))]}};
        {ok, #{<<"plugins">> := Plugins}} ->
            Now = installed(),
            Results = [plugin(Companion, P, state(P, Now)) || P <- Plugins] ++ [settings(Companion)],
            Lines = [said(Report, L) || {_, L} <- Results],
            case [L || {failed, L} <- Results] of
                [] -> {ok, Lines};
                _ -> {error, {plugins_failed, Lines}}
            end
    end.

said(Report, Line) ->
    Report({line, plugins, Line}),
    Line.

installed() ->
    emqx_guard_plugins:installed().

state(#{<<"name_vsn">> := NV, <<"name">> := Name}, Now) ->
    case [N || #{name_vsn := N, name := Nm} <- Now, Nm =:= Name] of
        [] -> <<"missing">>;
        Versions ->
            case lists:member(NV, Versions) of
                true -> <<"installed">>;
                false -> <<"other_version">>
            end
    end.

plugin(_Companion, #{<<"name_vsn">> := NV}, <<"installed">>) ->
    {ok, <<NV/binary, ": installed already, left as it is">>};
plugin(_Companion, #{<<"name_vsn">> := NV, <<"name">> := Name}, <<"other_version">>) ->
    {ok, text("~ts: another version of ~ts is installed, left as it is (only one version runs at a time)", [NV, Name])};
plugin(Companion, P = #{<<"name_vsn">> := NV}, <<"missing">>) ->
    case emqx_guard_companion:package(Companion, P) of
        {ok, Bin} -> install(Companion, P, Bin);
        {error, not_carried} ->
            {todo, text("~ts: not carried (larger than the limit; sha256 ~ts): install it by hand", [NV, maps:get(<<"sha256">>, P)])};
        {error, {hash_mismatch, #{expected := E, found := F}}} ->
            {failed, text("~ts: REFUSED: its package in the companion has sha256 ~ts, the companion recorded ~ts", [NV, F, E])};
        {error, Why} ->
            {failed, text("~ts: the package cannot be read from the companion: ~0tp", [NV, Why])}
    end.

install(Companion, P = #{<<"name_vsn">> := NV, <<"name">> := Name, <<"sha256">> := Sha}, Bin) ->
    case emqx_guard_emqx:plugin_install_dir() of
        unavailable ->
            {failed, <<NV/binary, ": this EMQX has no plugins (emqx_plugins): not installed">>};
        {ok, Dir} ->
            Package = filename:join(Dir, <<NV/binary, ".tar.gz">>),
            ok = filelib:ensure_dir(Package),
            ok = file:write_file(Package, Bin),
            ConfDir = emqx_guard_plugins:config_dir(Name),
            Confs = [begin
                         Dest = filename:join(ConfDir, filename:basename(In)),
                         {ok, C} = emqx_guard_companion:entry(Companion, In),
                         ok = filelib:ensure_dir(Dest),
                         ok = file:write_file(Dest, C)
                     end || In <- maps:get(<<"config_files">>, P, [])],
            Enable = maps:get(<<"enabled">>, P, false),
            Start = maps:get(<<"running">>, P, false),
            case install_steps(NV, Enable, Start) of
                ok ->
                    {ok, text("~ts: installed from the companion (sha256 ~ts), ~B config file(s) applied, ~ts", [
                        NV, Sha, length(Confs), case {Enable, Start} of
                                                    {true, true} -> <<"enabled and started">>;
                                                    {true, false} -> <<"enabled">>;
                                                    _ -> <<"left disabled, as it was">>
                                                end])};
                {error, {not_allowed, _}} ->
                    {todo, text("~ts: not installed: EMQX wants it allowed first (its package and config are in place): "
                                "emqx ctl plugins allow ~ts (the hardened profile: emqx ctl plugins allow ~ts sha256:~ts), "
                                "then emqx ctl plugins install ~ts", [NV, NV, NV, Sha, NV])};
                {error, {install_failed, Why}} ->
                    {failed, text("~ts: EMQX did not install it: ~0tP", [NV, Why, 10])}
            end
    end.

%% EMQX's install of the package NV (in its install dir), then enabled and started as asked:
%% `ok', `{error, {not_allowed, Detail}}' when EMQX's install gate wants `emqx ctl plugins
%% allow' first, `{error, {install_failed, Detail}}' else; the first step that fails ends it.
install_steps(NV, Enable, Start) ->
    Steps = [{ensure_installed, true}, {ensure_enabled, Enable}, {ensure_started, Start andalso Enable}],
    lists:foldl(fun({Step, true}, ok) -> step(Step, NV);
                   (_, Result) -> Result
                end, ok, Steps).

step(Step, NV) ->
    case emqx_guard_emqx:plugin_step(Step, NV) of
        ok ->
            ok;
        {error, plugins_unavailable} ->
            {error, {install_failed, plugins_unavailable}};
        {error, Reason} ->
            Text = string:lowercase(unicode:characters_to_binary(io_lib:format("~0tp", [Reason]))),
            case binary:match(Text, <<"allow">>) of
                nomatch -> {error, {install_failed, #{step => Step, reason => Reason}}};
                _ -> {error, {not_allowed, #{step => Step, reason => Reason}}}
            end
    end.

%% This plugin's own settings from the backup, applied on every node where they differ.
settings(Companion) ->
    case settings_changes(Companion) of
        Changes when map_size(Changes) =:= 0 ->
            {ok, <<"emqx_guard settings: the same as the backup's, nothing to apply">>};
        Changes ->
            Keys = lists:join(", ", [atom_to_list(K) || K <- lists:sort(maps:keys(Changes))]),
            case emqx_guard_settings_sync:update(Changes) of
                {ok, _New, []} -> {ok, text("emqx_guard settings: applied from the backup: ~ts", [Keys])};
                {ok, _New, Unreached} ->
                    {ok, text("emqx_guard settings: applied from the backup: ~ts (not reached: ~ts)",
                              [Keys, lists:join(", ", [atom_to_list(N) || {N, _} <- Unreached])])};
                {error, Why} ->
                    {failed, text("emqx_guard settings: not applied: ~ts", [emqx_guard_outcome:format_error(Why)])}
            end
    end.

%% The settings of the backup that differ from now (values never shown: they may be secrets).
settings_changes(Companion) ->
    case emqx_guard_companion:entry(Companion, <<"emqx_guard/settings.term">>) of
        {ok, Bin} ->
            case erl_scan:string(unicode:characters_to_list(Bin)) of
                {ok, Tokens, _} ->
                    case erl_parse:parse_term(Tokens) of
                        {ok, Stored} when is_map(Stored) ->
                            Known = maps:with(emqx_guard_settings:keys(), Stored),
                            emqx_guard_settings:changed(emqx_guard_settings:get(), Known);
                        _ ->
                            #{}
                    end;
                _ ->
                    #{}
            end;
        {error, _} ->
            #{}
    end.

unreadable(Why) ->
    text("the plugins companion beside this backup cannot be read: ~0tP", [Why, 10]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
