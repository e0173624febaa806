%% @doc The plugin's settings: the schema of every key, the settings in use, their one way to
%% change, and the settings file.
%%
%% Settings are a map with atom keys, each declared with its default and validation by the
%% module of its area: `emqx_guard_backup_config' (the schedule and the runs: `backup_cron',
%% `backup_keep', `backup_remote_keep', `backup_pins', `backup_timezone', `backup_catchup',
%% `export_timeout', `backup_io_limit'),
%% `emqx_guard_offsite_config' (`backup_remote_*'), `emqx_guard_notify_config' (`notify_*') and
%% `emqx_guard_observe_config' (`sys_events').
%% Validation returns `{error, Reason}' (`error()': a value refused, `{invalid_value, _}'; a key
%% unknown, `{unknown_setting, Key}'; a rule between keys broken, `{broken_rule, Line}'; a
%% schedule or zone the core refuses, `{schedule, _}'), which `emqx_guard_outcome:format_error/1'
%% says in one sentence naming the setting. Every setting's stored form validates again, to
%% itself (`validate(K, V)' is `{ok, V}' for a stored V): the settings file is read back, and
%% another node's settings are adopted, through the same validation as a value typed in. The
%% settings in use are read once from `<data_dir>/emqx_guard/settings.eterm' (`emqx_guard_store')
%% and kept in memory (`get/0'); `change/1' validates, saves and replaces them. A damaged file
%% gives the defaults for what is damaged plus a warning in the log, never a crash. Changes made
%% while the plugin runs go through `emqx_guard_settings_sync', which versions them for the
%% cluster.
-module(emqx_guard_settings).

%% get/0 is the settings in use, not the process dictionary.
-compile({no_auto_import, [get/0]}).

-include_lib("kernel/include/logger.hrl").

-export([
    get/0,
    forget/0,
    defaults/0,
    keys/0,
    validate/2,
    validate_changes/1,
    change/1,
    changed/2,
    settings_file/0,
    load/0,
    save/1
]).

-export_type([settings/0, key/0, error/0]).

-type key() :: emqx_guard_backup_config:key().
-type settings() :: #{
    backup_cron := binary(),
    backup_keep := emqx_guard_retention:stored(),
    backup_remote_keep := local | emqx_guard_retention:stored(),
    backup_pins := [binary()],
    backup_timezone := binary(),
    backup_catchup := non_neg_integer(),
    export_timeout := pos_integer(),
    backup_io_limit := off | pos_integer(),
    backup_plugins_max_size := non_neg_integer(),
    %% notification and off-site settings: see emqx_guard_notify_config, emqx_guard_offsite_config
    emqx_guard_notify_config:key() | emqx_guard_offsite_config:key() | emqx_guard_observe_config:key() => term()
}.
%% The settings file's format (`emqx_guard_store'): a new key is no new format (older versions
%% read the keys they know).
-define(FORMAT, #{tag => emqx_guard_settings, version => 1}).
%% Why a setting or a change is refused (`emqx_guard_outcome:format_error/1' says it).
-type error() ::
    {invalid_value, binary() | {binary(), term()}}
    | {unknown_setting, atom() | binary()}
    | {broken_rule, binary()}
    | emqx_guard_cron:error()
    | emqx_guard_store:error().

%% The settings in use, kept in memory (read from the file once, replaced on every save).
-define(CACHE, {?MODULE, settings}).

%%--------------------------------------------------------------------
%% The settings in use
%%--------------------------------------------------------------------

%% @doc The settings in use: read from the settings file the first time, then from memory;
%% `save/1' replaces them. The one way the plugin's modules read their settings.
-spec get() -> settings().
get() ->
    case persistent_term:get(?CACHE, undefined) of
        undefined ->
            Settings = load(),
            persistent_term:put(?CACHE, Settings),
            Settings;
        Settings ->
            Settings
    end.

%% @doc Drops the settings kept in memory (the plugin stops; the next `get/0' reads the file).
-spec forget() -> ok.
forget() ->
    _ = persistent_term:erase(?CACHE),
    ok.

%%--------------------------------------------------------------------
%% Defaults and keys
%%--------------------------------------------------------------------

%% @doc The settings a fresh install uses.
-spec defaults() -> settings().
defaults() ->
    lists:foldl(fun maps:merge/2, #{}, [M:defaults() || M <- owners()]).

%% @doc Every setting key, in display order.
-spec keys() ->
    [key() | emqx_guard_notify_config:key() | emqx_guard_offsite_config:key() | emqx_guard_observe_config:key()].
keys() ->
    lists:append([M:keys() || M <- owners()]).

%% The modules that declare the keys, in display order.
owners() ->
    [emqx_guard_backup_config, emqx_guard_offsite_config, emqx_guard_notify_config, emqx_guard_observe_config].

%%--------------------------------------------------------------------
%% Validation
%%--------------------------------------------------------------------

%% @doc Validates one setting given as text (binary or charlist) or as its stored form, as the
%% module that declares the key says (`emqx_guard_backup_config', `emqx_guard_offsite_config',
%% `emqx_guard_notify_config', `emqx_guard_observe_config'). Returns the value as it is stored,
%% which validates again to itself.
-spec validate(key(), term()) -> {ok, term()} | {error, error()}.
validate(Key, Raw) ->
    case [M || M <- owners(), lists:member(Key, M:keys())] of
        [Owner] -> Owner:validate(Key, Raw);
        [] -> {error, {unknown_setting, Key}}
    end.

%% @doc Validates a map of changes; keys are atoms or binaries (as the dashboard
%% sends them). All values must be valid, or nothing is returned.
-spec validate_changes(map()) -> {ok, #{key() => term()}} | {error, error()}.
validate_changes(Changes) when is_map(Changes) ->
    validate_changes(maps:to_list(Changes), #{});
validate_changes(_) ->
    {error, {invalid_value, <<"settings must be a map">>}}.

validate_changes([], Acc) ->
    {ok, Acc};
validate_changes([{RawKey, Raw} | Rest], Acc) ->
    case to_key(RawKey) of
        {ok, Key} ->
            case validate(Key, Raw) of
                {ok, Value} -> validate_changes(Rest, Acc#{Key => Value});
                {error, _} = Error -> Error
            end;
        error ->
            {error, {unknown_setting, key_text(RawKey)}}
    end.

%% @doc The entries of New whose value differs from Old (all of New when Old is not a map):
%% what a change really changes, for applying a dashboard save and for logging.
-spec changed(map() | term(), map()) -> map().
changed(Old, New) when is_map(Old) ->
    maps:filter(fun(Key, Value) -> maps:find(Key, Old) =/= {ok, Value} end, New);
changed(_Old, New) ->
    New.

%% @doc Validates Changes (as `validate_changes/1'), merges them into the settings in use, checks
%% the rules between keys (`emqx_guard_notify_config:problems/1', `emqx_guard_offsite_config:check/1')
%% and saves the result. Returns the settings before and after; on any error nothing changes.
%% Every change (command line, dashboard, another node) comes through here, so each is checked
%% whole: a change is refused when the result breaks a rule about a key it touches (a secret
%% without its URL, an s3 destination without its keys); a rule broken in settings an older
%% version saved, on keys the change leaves alone, does not block it.
-spec change(map()) -> {ok, Old :: settings(), New :: settings()} | {error, error()}.
change(Changes) ->
    case validate_changes(Changes) of
        {ok, Valid} ->
            Old = get(),
            New = maps:merge(Old, Valid),
            case broken_rules(Old, New) of
                [] -> saved(Old, New);
                [Line | _] -> {error, {broken_rule, Line}}
            end;
        {error, _} = Error ->
            Error
    end.

broken_rules(Old, New) ->
    Touched = maps:keys(changed(Old, New)),
    Offsite =
        case emqx_guard_offsite_config:check(New) of
            ok -> [];
            {error, {broken_rule, Line}} -> [{emqx_guard_offsite_config:keys(), Line}]
        end,
    [
        Line
     || {Keys, Line} <- emqx_guard_notify_config:problems(New) ++ Offsite,
        lists:any(fun(K) -> lists:member(K, Touched) end, Keys)
    ].

saved(Old, New) ->
    case save(New) of
        ok -> {ok, Old, New};
        {error, _} = Error -> Error
    end.

to_key(K) when is_atom(K) ->
    case lists:member(K, keys()) of
        true -> {ok, K};
        false -> error
    end;
to_key(K) when is_binary(K); is_list(K) ->
    case emqx_guard_value:text(K) of
        {ok, Text} ->
            case [Key || Key <- keys(), atom_to_binary(Key, utf8) =:= Text] of
                [Key] -> {ok, Key};
                [] -> error
            end;
        error ->
            error
    end;
to_key(_) ->
    error.

key_text(K) ->
    case emqx_guard_value:text(K) of
        {ok, T} -> T;
        error -> iolist_to_binary(io_lib:format("~tp", [K]))
    end.

%%--------------------------------------------------------------------
%% Persistence
%%--------------------------------------------------------------------

%% @doc The settings file.
-spec settings_file() -> file:filename_all().
settings_file() ->
    emqx_guard_store:path("settings.eterm").

%% @doc Reads the stored settings. A missing file gives the defaults; a damaged
%% file or a damaged value gives the defaults for what is damaged, plus a warning.
-spec load() -> settings().
load() ->
    Path = settings_file(),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Stored} when is_map(Stored) ->
            merge_stored(Path, Stored);
        none ->
            defaults();
        %% a newer plugin's file: said by the store
        newer ->
            defaults();
        Damaged ->
            %% what it holds may be the secrets too
            Why = emqx_guard_redact:term(Damaged),
            ?LOG_WARNING(#{msg => emqx_guard_settings_damaged, path => Path, reason => Why, action => using_defaults}),
            defaults()
    end.

merge_stored(Path, Stored) ->
    maps:fold(
        fun(Key, Default, Acc) ->
            case maps:find(Key, Stored) of
                error ->
                    Acc#{Key => Default};
                {ok, Value} ->
                    case validate_stored(Key, Value) of
                        {ok, Valid} ->
                            Acc#{Key => Valid};
                        {error, Why} ->
                            ?LOG_WARNING(#{
                                msg => emqx_guard_setting_damaged,
                                path => Path,
                                key => Key,
                                reason => Why,
                                action => using_default
                            }),
                            Acc#{Key => Default}
                    end
            end
        end,
        #{},
        defaults()
    ).

%% A stored schedule or zone was validated when it was set: when the NIF cannot
%% be used right now, keep it rather than silently falling back to the default.
validate_stored(Key, Value) ->
    case validate(Key, Value) of
        {ok, _} = Ok ->
            Ok;
        {error, _} = Error when (Key =:= backup_cron orelse Key =:= backup_timezone), is_binary(Value) ->
            case emqx_guard_core:usable() of
                true -> Error;
                false -> {ok, Value}
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Stores the settings atomically.
-spec save(settings()) -> ok | {error, emqx_guard_store:error()}.
save(Settings) ->
    case emqx_guard_store:save(settings_file(), ?FORMAT, Settings) of
        ok ->
            persistent_term:put(?CACHE, Settings),
            ok;
        {error, _} = Error ->
            Error
    end.
