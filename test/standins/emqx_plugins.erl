%% @doc TEST-ONLY stand-in for EMQX's plugins, `emqx_plugins' (apps/emqx_plugins).
%%
%% As EMQX keeps them: a package `NAME-VSN.tar.gz' in `install_dir()' (one top directory
%% `NAME-VSN/' holding `release.json'), unpacked there by `ensure_installed(NameVsn)' (a package
%% that is not there, or whose top directory has no release.json, is an error map as EMQX's);
%% `ensure_enabled/1' and `ensure_started/1' need it installed; `list()' answers one map per
%% installed plugin with `name', `rel_vsn', `config_status' and `running_status'. A config saved
%% through the API is `<data_dir>/plugins/NAME/config.hocon' (tests write it as EMQX would).
%%
%% The install gate of EMQX 6.3 (`emqx ctl plugins allow NAME-VSN' before an install) is
%% `set_allow_required(true)': then an install of a package not allowed (`allow/1') answers
%% `{error, #{msg => "plugin_not_allowed", hint => "emqx ctl plugins allow NAME-VSN"}}' and an
%% allow is used up by one install. The exact reason term of EMQX's gate is an assumption.
%%
%% Test-control API (stand-in only): `set_install_dir/1' (default `<data_dir>/plugin_packages'),
%% `installed(NameVsn, Enabled, Running)' (a plugin as if installed earlier), `allow/1',
%% `set_allow_required/1', `reset/0'.
-module(emqx_plugins).

-export([list/0, install_dir/0, ensure_installed/1, ensure_enabled/1, ensure_started/1]).
-export([set_install_dir/1, installed/3, allow/1, set_allow_required/1, reset/0]).

-define(KEY, {?MODULE, installed}).
-define(DIR, {?MODULE, dir}).
-define(GATE, {?MODULE, gate}).
-define(ALLOWED, {?MODULE, allowed}).

-spec list() -> [map()].
list() ->
    [#{name => N, rel_vsn => V, config_status => enabled_status(E), running_status => running_status(R)}
     || {NameVsn, #{enabled := E, running := R}} <- lists:sort(maps:to_list(persistent_term:get(?KEY, #{}))),
        [N, V] <- [binary:split(NameVsn, <<"-">>)]].

-spec install_dir() -> string().
install_dir() ->
    persistent_term:get(?DIR, filename:join(emqx:data_dir(), "plugin_packages")).

-spec ensure_installed(string() | binary()) -> ok | {error, map()}.
ensure_installed(NameVsn0) ->
    NameVsn = unicode:characters_to_binary(NameVsn0),
    Allowed = persistent_term:get(?ALLOWED, []),
    case persistent_term:get(?GATE, false) andalso not lists:member(NameVsn, Allowed) of
        true ->
            {error, #{msg => "plugin_not_allowed", hint => "emqx ctl plugins allow " ++ binary_to_list(NameVsn)}};
        false ->
            persistent_term:put(?ALLOWED, Allowed -- [NameVsn]),
            TarGz = filename:join(install_dir(), binary_to_list(NameVsn) ++ ".tar.gz"),
            case erl_tar:extract(TarGz, [compressed, {cwd, install_dir()}]) of
                ok ->
                    case filelib:is_regular(filename:join([install_dir(), NameVsn, "release.json"])) of
                        true -> put_state(NameVsn, #{enabled => false, running => false});
                        false -> {error, #{error_msg => "bad_info_file_content", path => TarGz}}
                    end;
                {error, Reason} ->
                    {error, #{error_msg => "failed_to_extract_plugin_package", path => TarGz, reason => Reason}}
            end
    end.

-spec ensure_enabled(string() | binary()) -> ok | {error, map()}.
ensure_enabled(NameVsn) ->
    update(NameVsn, fun(S) -> S#{enabled => true} end).

-spec ensure_started(string() | binary()) -> ok | {error, map()}.
ensure_started(NameVsn) ->
    update(NameVsn, fun(S) -> S#{running => true} end).

%% @doc Stand-in only.
-spec set_install_dir(file:filename()) -> ok.
set_install_dir(Dir) -> persistent_term:put(?DIR, Dir).

%% @doc Stand-in only: NameVsn as if installed earlier.
-spec installed(binary(), boolean(), boolean()) -> ok.
installed(NameVsn, Enabled, Running) -> put_state(NameVsn, #{enabled => Enabled, running => Running}).

%% @doc Stand-in only: `emqx ctl plugins allow NameVsn'.
-spec allow(binary()) -> ok.
allow(NameVsn) -> persistent_term:put(?ALLOWED, [NameVsn | persistent_term:get(?ALLOWED, [])]).

%% @doc Stand-in only: whether an install needs an allow first (EMQX 6.3).
-spec set_allow_required(boolean()) -> ok.
set_allow_required(Required) -> persistent_term:put(?GATE, Required).

%% @doc Stand-in only: nothing installed, no gate, the default install dir.
-spec reset() -> ok.
reset() ->
    [persistent_term:erase(K) || K <- [?KEY, ?DIR, ?GATE, ?ALLOWED]],
    ok.

update(NameVsn0, Fun) ->
    NameVsn = unicode:characters_to_binary(NameVsn0),
    case maps:find(NameVsn, persistent_term:get(?KEY, #{})) of
        {ok, S} -> put_state(NameVsn, Fun(S));
        error -> {error, #{error_msg => "plugin_not_found", name_vsn => NameVsn}}
    end.

put_state(NameVsn, S) ->
    persistent_term:put(?KEY, (persistent_term:get(?KEY, #{}))#{NameVsn => S}).

enabled_status(true) -> enabled;
enabled_status(false) -> disabled.

running_status(true) -> running;
running_status(false) -> stopped.
