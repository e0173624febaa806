%% @doc The plugin's settings: defaults, validation, and persistence.
%%
%% Settings are a map with atom keys:
%% <ul>
%% <li>`backup_cron' (binary, crontab(5) expression, normalized by the NIF)</li>
%% <li>`backup_keep' (integer 1..1000)</li>
%% <li>`backup_timezone' (binary: an IANA zone name or `local')</li>
%% <li>`backup_catchup' (seconds, 0 = off; written as a duration like `24h')</li>
%% <li>`export_timeout' (seconds, more than 0; written as a duration like `10m')</li>
%% </ul>
%% Validation returns `{error, Line}' where Line is one sentence a person
%% understands. Settings and the scheduler's run state are stored as Erlang
%% terms under `<data_dir>/emqx_guard/', written to a temporary file in the
%% same directory, synced and renamed. Reading never executes code
%% (`file:consult/1' only parses terms) and a damaged file gives the defaults
%% plus a warning in the log, never a crash.
-module(emqx_guard_settings).

-include_lib("kernel/include/logger.hrl").

-export([
    get/0,
    forget/0,
    defaults/0,
    keys/0,
    validate/2,
    validate_changes/1,
    changed/2,
    from_config/1,
    to_config/1,
    parse_duration/1,
    format_duration/1,
    dir/0,
    settings_file/0,
    state_file/0,
    load/0,
    save/1,
    load_state/0,
    save_state/1,
    default_state/0,
    read_term_file/1,
    write_term_file/2
]).

-export_type([settings/0, key/0, run_state/0]).

-type key() :: backup_cron | backup_keep | backup_timezone | backup_catchup | export_timeout.
-type settings() :: #{
    backup_cron := binary(),
    backup_keep := 1..1000,
    backup_timezone := binary(),
    backup_catchup := non_neg_integer(),
    export_timeout := pos_integer(),
    %% notification settings: see emqx_guard_notify_config
    emqx_guard_notify_config:key() => term()
}.
%% What the scheduler persists so that catch-up and the counters survive a restart.
-type run_state() :: #{
    last_fired := undefined | integer(),
    last_run := undefined | map(),
    counts := #{ok := non_neg_integer(), failed := non_neg_integer(), skipped := non_neg_integer()}
}.

-define(FORMAT_VSN, 1).
-define(MAX_KEEP, 1000).
%% A catch-up window or export timeout longer than a year is certainly a typo.
-define(MAX_DURATION_S, 366 * 86400).
%% 9999-12-31 23:59:59.999 UTC in Unix milliseconds: the latest instant a stored state may hold.
-define(MAX_INSTANT_MS, 253402300799999).
%% The fields of a last run record (emqx_guard_scheduler's run_record type).
-define(RUN_FIELDS, [
    started_at, duration_ms, trigger, result, instant, file, path, size, sha256, pruned, error, warning
]).

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
    maps:merge(emqx_guard_notify_config:defaults(), #{
        backup_cron => <<"0 12 * * 0">>,
        backup_keep => 5,
        backup_timezone => <<"local">>,
        backup_catchup => 24 * 3600,
        export_timeout => 10 * 60
    }).

%% @doc Every setting key, in display order.
-spec keys() -> [key() | emqx_guard_notify_config:key()].
keys() ->
    [backup_cron, backup_keep, backup_timezone, backup_catchup, export_timeout] ++
        emqx_guard_notify_config:keys().

%%--------------------------------------------------------------------
%% Validation
%%--------------------------------------------------------------------

%% @doc Validates one setting given as text (binary or charlist) or, for the
%% numeric settings, as an integer. Returns the value as it is stored.
-spec validate(key(), term()) -> {ok, term()} | {error, binary()}.
validate(backup_cron, Raw) ->
    with_text(Raw, <<"backup_cron">>, fun validate_cron/1);
validate(backup_keep, N) when is_integer(N) ->
    validate_keep(N);
validate(backup_keep, Raw) ->
    with_text(Raw, <<"backup_keep">>, fun(Text) ->
        case string:to_integer(string:trim(Text)) of
            {N, <<>>} when is_integer(N) -> validate_keep(N);
            _ -> {error, <<"backup_keep must be a whole number from 1 to 1000, not \"", Text/binary, "\"">>}
        end
    end);
validate(backup_timezone, Raw) ->
    with_text(Raw, <<"backup_timezone">>, fun validate_zone/1);
validate(backup_catchup, Raw) ->
    validate_duration(<<"backup_catchup">>, Raw, 0);
validate(export_timeout, Raw) ->
    validate_duration(<<"export_timeout">>, Raw, 1);
validate(Key, Raw) ->
    case lists:member(Key, emqx_guard_notify_config:keys()) of
        true -> emqx_guard_notify_config:validate(Key, Raw);
        false -> {error, iolist_to_binary(io_lib:format("unknown setting ~tp", [Key]))}
    end.

%% @doc Validates a map of changes; keys are atoms or binaries (as the dashboard
%% sends them). All values must be valid, or nothing is returned.
-spec validate_changes(map()) -> {ok, #{key() => term()}} | {error, binary()}.
validate_changes(Changes) when is_map(Changes) ->
    validate_changes(maps:to_list(Changes), #{});
validate_changes(_) ->
    {error, <<"settings must be a map">>}.

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
            {error, iolist_to_binary(io_lib:format("unknown setting ~ts", [key_text(RawKey)]))}
    end.

%% @doc The entries of New whose value differs from Old (all of New when Old is not a map):
%% what a change really changes, for applying a dashboard save and for logging.
-spec changed(map() | term(), map()) -> map().
changed(Old, New) when is_map(Old) ->
    maps:filter(fun(Key, Value) -> maps:find(Key, Old) =/= {ok, Value} end, New);
changed(_Old, New) ->
    New.

%% @doc Builds complete settings from a plugin config map (binary keys, as in
%% `priv/config.hocon'); missing keys take their defaults.
-spec from_config(map()) -> {ok, settings()} | {error, binary()}.
from_config(Config) ->
    case validate_changes(Config) of
        {ok, Changes} -> {ok, maps:merge(defaults(), Changes)};
        {error, _} = Error -> Error
    end.

%% @doc The settings as a plugin config map with binary keys and text durations.
-spec to_config(settings()) -> #{binary() => binary() | integer() | boolean()}.
to_config(
    #{
        backup_cron := Cron,
        backup_keep := Keep,
        backup_timezone := Zone,
        backup_catchup := Catchup,
        export_timeout := Timeout
    } = Settings
) ->
    maps:merge(emqx_guard_notify_config:to_config(Settings), #{
        <<"backup_cron">> => Cron,
        <<"backup_keep">> => Keep,
        <<"backup_timezone">> => Zone,
        <<"backup_catchup">> => format_duration(Catchup),
        <<"export_timeout">> => format_duration(Timeout)
    }).

validate_cron(Text) ->
    emqx_guard_schedule:validate(Text).

validate_keep(N) when is_integer(N), N >= 1, N =< ?MAX_KEEP ->
    {ok, N};
validate_keep(N) ->
    {error, iolist_to_binary(io_lib:format("backup_keep must be from 1 to 1000, not ~p", [N]))}.

validate_zone(Text) ->
    Zone = string:trim(Text),
    case Zone of
        <<>> ->
            {error, <<"backup_timezone must be an IANA zone name such as Europe/Berlin, or local">>};
        _ ->
            case emqx_guard_schedule:zone_name(Zone) of
                {ok, _Iana} -> {ok, Zone};
                {error, _} = Error -> Error
            end
    end.

validate_duration(Name, N, Min) when is_integer(N) ->
    check_duration(Name, N, Min);
validate_duration(Name, Raw, Min) ->
    with_text(Raw, Name, fun(Text) ->
        case parse_duration(Text) of
            {ok, Seconds} ->
                check_duration(Name, Seconds, Min);
            {error, Why} ->
                {error, <<Name/binary, " ", Why/binary>>}
        end
    end).

check_duration(Name, Seconds, _Min) when Seconds < 0 ->
    {error, <<Name/binary, " cannot be negative">>};
check_duration(Name, Seconds, Min) when Seconds < Min ->
    {error, <<Name/binary, " must be longer than 0">>};
check_duration(Name, Seconds, _Min) when Seconds > ?MAX_DURATION_S ->
    {error, <<Name/binary, " must be at most 366 days">>};
check_duration(_Name, Seconds, _Min) ->
    {ok, Seconds}.

with_text(Raw, Name, Fun) ->
    case to_text(Raw) of
        {ok, Text} -> Fun(Text);
        error -> {error, <<Name/binary, " must be text">>}
    end.

to_text(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        Bin when is_binary(Bin) -> {ok, Bin};
        _ -> error
    end;
to_text(L) when is_list(L) ->
    try unicode:characters_to_binary(L) of
        Bin when is_binary(Bin) -> {ok, Bin};
        _ -> error
    catch
        _:_ -> error
    end;
to_text(A) when is_atom(A) ->
    {ok, atom_to_binary(A, utf8)};
to_text(_) ->
    error.

to_key(K) when is_atom(K) ->
    case lists:member(K, keys()) of
        true -> {ok, K};
        false -> error
    end;
to_key(K) when is_binary(K); is_list(K) ->
    case to_text(K) of
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
    case to_text(K) of
        {ok, T} -> T;
        error -> iolist_to_binary(io_lib:format("~tp", [K]))
    end.

%%--------------------------------------------------------------------
%% Durations
%%--------------------------------------------------------------------

%% @doc Parses a duration such as `24h', `90m', `1h30m', `45s', `2d' or a bare
%% number of seconds (`0' turns a feature off). Returns seconds.
-spec parse_duration(binary() | string()) -> {ok, non_neg_integer()} | {error, binary()}.
parse_duration(Text) when is_list(Text) ->
    case to_text(Text) of
        {ok, Bin} -> parse_duration(Bin);
        error -> {error, <<"must be a duration such as 24h, 90m or 0">>}
    end;
parse_duration(Text) when is_binary(Text) ->
    case string:lowercase(string:trim(Text)) of
        <<>> ->
            {error, <<"must be a duration such as 24h, 90m or 0">>};
        Trimmed ->
            case re:run(Trimmed, <<"^[0-9]+$">>, [{capture, none}]) of
                match ->
                    {ok, binary_to_integer(Trimmed)};
                nomatch ->
                    parse_units(Trimmed, Text)
            end
    end.

parse_units(Trimmed, Original) ->
    case re:run(Trimmed, <<"^(?:[0-9]+(?:d|h|m|s))+$">>, [{capture, none}]) of
        match ->
            {match, Parts} = re:run(Trimmed, <<"([0-9]+)(d|h|m|s)">>, [global, {capture, all_but_first, binary}]),
            {ok, lists:sum([binary_to_integer(N) * unit_seconds(U) || [N, U] <- Parts])};
        nomatch ->
            {error,
                <<"must be a duration such as 24h, 90m, 1h30m or 0, not \"", (string:trim(Original))/binary,
                    "\"">>}
    end.

unit_seconds(<<"d">>) -> 86400;
unit_seconds(<<"h">>) -> 3600;
unit_seconds(<<"m">>) -> 60;
unit_seconds(<<"s">>) -> 1.

%% @doc Formats seconds as the shortest exact duration text: `24h', `90m', `45s', `0'.
-spec format_duration(non_neg_integer()) -> binary().
format_duration(0) -> <<"0">>;
format_duration(S) when S rem 3600 =:= 0 -> <<(integer_to_binary(S div 3600))/binary, "h">>;
format_duration(S) when S rem 60 =:= 0 -> <<(integer_to_binary(S div 60))/binary, "m">>;
format_duration(S) -> <<(integer_to_binary(S))/binary, "s">>.

%%--------------------------------------------------------------------
%% Persistence
%%--------------------------------------------------------------------

%% @doc The directory holding the plugin's files under EMQX's data dir.
-spec dir() -> file:filename_all().
dir() ->
    filename:join([emqx_guard_emqx:data_dir(), "emqx_guard"]).

%% @doc The settings file.
-spec settings_file() -> file:filename_all().
settings_file() ->
    filename:join(dir(), "settings.eterm").

%% @doc The scheduler's run state file (last fired instant, last run, counters).
-spec state_file() -> file:filename_all().
state_file() ->
    filename:join(dir(), "state.eterm").

%% @doc Reads the stored settings. A missing file gives the defaults; a damaged
%% file or a damaged value gives the defaults for what is damaged, plus a warning.
-spec load() -> settings().
load() ->
    Path = settings_file(),
    case read_term_file(Path) of
        {ok, {emqx_guard_settings, ?FORMAT_VSN, Stored}} when is_map(Stored) ->
            merge_stored(Path, Stored);
        {ok, Other} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_settings_damaged,
                path => Path,
                reason => unexpected_content,
                content => Other,
                action => using_defaults
            }),
            defaults();
        {error, enoent} ->
            defaults();
        {error, Reason} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_settings_unreadable,
                path => Path,
                reason => Reason,
                action => using_defaults
            }),
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
            case nif_available() of
                true -> Error;
                false -> {ok, Value}
            end;
        {error, _} = Error ->
            Error
    end.

nif_available() ->
    try emqx_guard_nif:validate(<<"* * * * *">>) of
        {ok, _} -> true;
        _ -> false
    catch
        _:_ -> false
    end.

%% @doc Stores the settings atomically.
-spec save(settings()) -> ok | {error, binary()}.
save(Settings) ->
    case write_term_file(settings_file(), {emqx_guard_settings, ?FORMAT_VSN, Settings}) of
        ok ->
            persistent_term:put(?CACHE, Settings),
            ok;
        {error, _} = Error ->
            Error
    end.

%% @doc The run state of a fresh install.
-spec default_state() -> run_state().
default_state() ->
    #{last_fired => undefined, last_run => undefined, counts => #{ok => 0, failed => 0, skipped => 0}}.

%% @doc Reads the stored run state; missing or damaged gives a fresh state
%% (damaged also logs a warning).
-spec load_state() -> run_state().
load_state() ->
    Path = state_file(),
    case read_term_file(Path) of
        {ok, {emqx_guard_state, ?FORMAT_VSN, Stored}} when is_map(Stored) ->
            check_state(Path, Stored);
        {ok, Other} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_state_damaged,
                path => Path,
                reason => unexpected_content,
                content => Other,
                action => starting_fresh
            }),
            default_state();
        {error, enoent} ->
            default_state();
        {error, Reason} ->
            ?LOG_WARNING(#{
                msg => emqx_guard_state_unreadable,
                path => Path,
                reason => Reason,
                action => starting_fresh
            }),
            default_state()
    end.

check_state(Path, Stored) ->
    Default = default_state(),
    LastFired =
        case maps:get(last_fired, Stored, undefined) of
            undefined ->
                undefined;
            T ->
                case is_instant(T) of
                    true ->
                        T;
                    false ->
                        state_damaged(Path, last_fired, T),
                        undefined
                end
        end,
    LastRun =
        case maps:get(last_run, Stored, undefined) of
            undefined ->
                undefined;
            Run ->
                case check_run(Run) of
                    {ok, Checked} ->
                        Checked;
                    error ->
                        state_damaged(Path, last_run, Run),
                        undefined
                end
        end,
    Counts0 = maps:get(counts, Stored, #{}),
    Counts =
        case is_map(Counts0) of
            true ->
                maps:map(
                    fun(K, Zero) ->
                        case maps:get(K, Counts0, Zero) of
                            N when is_integer(N), N >= 0 -> N;
                            Bad ->
                                state_damaged(Path, {counts, K}, Bad),
                                Zero
                        end
                    end,
                    maps:get(counts, Default)
                );
            false ->
                state_damaged(Path, counts, Counts0),
                maps:get(counts, Default)
        end,
    #{last_fired => LastFired, last_run => LastRun, counts => Counts}.

state_damaged(Path, Key, Value) ->
    ?LOG_WARNING(#{
        msg => emqx_guard_state_damaged,
        path => Path,
        key => Key,
        content => Value,
        action => dropped
    }).

%% An instant the plugin can compute with: Unix milliseconds from 1970 to the end of year 9999.
is_instant(T) ->
    is_integer(T) andalso T >= 0 andalso T =< ?MAX_INSTANT_MS.

%% A last run record as the scheduler writes it (see its run_record type): the required fields
%% and every known optional field of the right type, `error' present when the run failed; fields
%% this version does not know are dropped. A record with any damaged field is dropped whole, so
%% that the alarm, the health check and `guard backup_status' never see a damaged record.
check_run(#{started_at := S, duration_ms := D, trigger := T, result := R} = Run) ->
    Known = maps:with(?RUN_FIELDS, Run),
    Ok =
        is_instant(S) andalso
            is_integer(D) andalso D >= 0 andalso
            lists:member(T, [scheduled, catchup, manual]) andalso
            lists:member(R, [ok, failed]) andalso
            (R =:= ok orelse maps:is_key(error, Known)) andalso
            lists:all(
                fun({K, V}) -> run_field_ok(K, V) end,
                maps:to_list(maps:without([started_at, duration_ms, trigger, result], Known))
            ),
    case Ok of
        true -> {ok, Known};
        false -> error
    end;
check_run(_) ->
    error.

run_field_ok(instant, V) -> is_instant(V);
run_field_ok(size, V) -> is_integer(V) andalso V >= 0;
run_field_ok(pruned, V) -> is_integer(V) andalso V >= 0;
run_field_ok(_Text, V) -> is_binary(V) andalso is_text(V).

is_text(B) ->
    case unicode:characters_to_binary(B) of
        B -> true;
        _ -> false
    end.

%% @doc Stores the run state atomically.
-spec save_state(run_state()) -> ok | {error, binary()}.
save_state(State) ->
    write_term_file(state_file(), {emqx_guard_state, ?FORMAT_VSN, State}).

%% @doc Reads a file holding exactly one Erlang term. Only parses, never evaluates.
-spec read_term_file(file:filename_all()) -> {ok, term()} | {error, term()}.
read_term_file(Path) ->
    case file:consult(Path) of
        {ok, [Term]} -> {ok, Term};
        {ok, Terms} -> {error, {expected_one_term, length(Terms)}};
        {error, _} = Error -> Error
    end.

%% @doc Writes one term to Path atomically: a temporary file in the same
%% directory, synced, then renamed over Path.
-spec write_term_file(file:filename_all(), term()) -> ok | {error, binary()}.
write_term_file(Path, Term) ->
    Dir = filename:dirname(Path),
    Tmp = filename:join(Dir, [".", filename:basename(Path), ".tmp.", os:getpid(), ".",
        integer_to_list(erlang:unique_integer([positive]))]),
    Content = unicode:characters_to_binary(
        io_lib:format("%% -*- coding: utf-8 -*-~n%% Written by emqx_guard; edit with `emqx ctl guard`.~n~tp.~n", [Term])
    ),
    Result =
        case filelib:ensure_dir(Path) of
            ok -> write_synced(Tmp, Content);
            {error, _} = E -> E
        end,
    case Result of
        ok ->
            case file:rename(Tmp, Path) of
                ok ->
                    ok;
                {error, Reason} ->
                    _ = file:delete(Tmp),
                    write_error(Path, Reason)
            end;
        {error, Reason} ->
            _ = file:delete(Tmp),
            write_error(Path, Reason)
    end.

write_synced(Tmp, Content) ->
    case file:open(Tmp, [write, raw, binary]) of
        {ok, Fd} ->
            %% owner only, before any byte is written: the settings hold the SMTP password
            _ = file:change_mode(Tmp, 8#600),
            Result =
                case file:write(Fd, Content) of
                    ok -> file:sync(Fd);
                    {error, _} = E -> E
                end,
            _ = file:close(Fd),
            Result;
        {error, _} = E ->
            E
    end.

write_error(Path, Reason) ->
    {error,
        iolist_to_binary(
            io_lib:format("cannot write ~ts: ~ts", [Path, file:format_error(Reason)])
        )}.
