%% @doc The backup settings: every `backup_*' key of the schedule and the runs (and
%% `export_timeout'), its default and validation. The keys live in the plugin's settings map next
%% to the off-site and notification keys (`emqx_guard_settings' holds, saves and changes them):
%% <ul>
%% <li>`backup_cron' (binary, crontab(5) expression, normalized by the NIF; default
%%     `0 12 * * 0')</li>
%% <li>`backup_keep' (the retention policy: restic's rules as one line, `last=3 daily=7
%%     within=2d', a bare number N meaning `last=N'; stored as the integer N for `last=N' alone,
%%     else as its canonical text; 5, see `emqx_guard_retention')</li>
%% <li>`backup_remote_keep' (the policy of the off-site copies, or `local': the same as
%%     `backup_keep'; `local')</li>
%% <li>`backup_pins' (the export names retention never deletes, sorted; none)</li>
%% <li>`backup_timezone' (binary: an IANA zone name or `local'; `local')</li>
%% <li>`backup_catchup' (seconds, 0 = off; written as a duration like `24h'; 24h)</li>
%% <li>`export_timeout' (seconds, more than 0; written as a duration like `10m'; 10m)</li>
%% <li>`backup_io_limit' (bytes per second that a backup's checks read at most, or `off'; written
%%     as a rate like `50MB/s', `emqx_guard_render:rate/1'; `off')</li>
%% <li>`backup_plugins_max_size' (bytes: the largest plugin package a backup's plugins companion
%%     carries, larger ones recorded by name and hash only, `emqx_guard_companion'; written as a
%%     size like `100MiB'; 0 or `off' carries none; 100 MiB)</li>
%% </ul>
%% A value is given as text (binary or charlist) or as its stored form (an integer for the
%% numbers, durations and rates, `off' for no read limit); the stored form validates again to
%% itself. A refused value is `{invalid_value, Line}' or, for a schedule or zone the core refuses,
%% `{schedule, _}' (`emqx_guard_outcome:format_error/1' says it, naming the setting).
-module(emqx_guard_backup_config).

-export([keys/0, defaults/0, validate/2]).

-export_type([key/0]).

-type key() :: backup_cron | backup_keep | backup_remote_keep | backup_pins | backup_timezone | backup_catchup | export_timeout | backup_io_limit
    | backup_plugins_max_size.

%% A catch-up window or export timeout longer than a year is certainly a typo.
-define(MAX_DURATION_S, 366 * 86400).
%% A read limit below 1 MB/s would make a backup of a few GB take hours.
-define(MIN_RATE, 1000000).

%% @doc Every backup key, in display order.
-spec keys() -> [key()].
keys() ->
    [
        backup_cron,
        backup_keep,
        backup_remote_keep,
        backup_pins,
        backup_timezone,
        backup_catchup,
        export_timeout,
        backup_io_limit,
        backup_plugins_max_size
    ].

%% @doc The defaults: every Sunday at 12:00 node local time, the newest 5 kept here and off-site,
%% none pinned, a missed backup caught up within a day, 10 minutes for an export, no read limit,
%% plugin packages up to 100 MiB carried.
-spec defaults() -> #{key() => term()}.
defaults() ->
    #{
        backup_cron => <<"0 12 * * 0">>,
        backup_keep => 5,
        backup_remote_keep => local,
        backup_pins => [],
        backup_timezone => <<"local">>,
        backup_catchup => 24 * 3600,
        export_timeout => 10 * 60,
        backup_io_limit => off,
        backup_plugins_max_size => 100 * 1024 * 1024
    }.

%% @doc Validates one backup setting (see the module doc): the value as it is stored, or why not.
-spec validate(key(), term()) -> {ok, term()} | {error, emqx_guard_settings:error()}.
validate(backup_cron, Raw) ->
    with_text(Raw, <<"backup_cron">>, fun validate_cron/1);
validate(backup_keep, Raw) ->
    emqx_guard_retention:validate(<<"backup_keep">>, Raw);
validate(backup_remote_keep, Raw) ->
    emqx_guard_retention:validate_remote(Raw);
validate(backup_pins, Raw) ->
    emqx_guard_retention:validate_pins(Raw);
validate(backup_timezone, Raw) ->
    with_text(Raw, <<"backup_timezone">>, fun validate_zone/1);
validate(backup_catchup, Raw) ->
    validate_duration(<<"backup_catchup">>, Raw, 0);
validate(export_timeout, Raw) ->
    validate_duration(<<"export_timeout">>, Raw, 1);
validate(backup_plugins_max_size, N) when is_integer(N), N >= 0, N =< 1000 * 1000000000 ->
    {ok, N};
validate(backup_plugins_max_size, Raw) ->
    with_text(Raw, <<"backup_plugins_max_size">>, fun(Text) ->
        case emqx_guard_render:parse_rate(Text) of
            {ok, off} -> {ok, 0};
            {ok, Bytes} when Bytes =< 1000 * 1000000000 -> {ok, Bytes};
            {ok, _} -> invalid(<<"backup_plugins_max_size must be at most 1000GB">>);
            {error, _} -> invalid(<<"backup_plugins_max_size must be a size such as 100MiB or 20MB (0: no package carried)">>)
        end
    end);
validate(backup_io_limit, N) when is_integer(N), N >= 0 ->
    %% the stored form: bytes per second, read as the bare number it is (0 is off)
    validate(backup_io_limit, integer_to_binary(N));
validate(backup_io_limit, Raw) ->
    with_text(Raw, <<"backup_io_limit">>, fun(Text) ->
        case emqx_guard_render:parse_rate(Text) of
            {ok, off} -> {ok, off};
            {ok, Rate} -> check_rate(Rate);
            {error, Why} -> {error, {invalid_value, {<<"backup_io_limit">>, Why}}}
        end
    end).

validate_cron(Text) ->
    emqx_guard_cron:validate(Text).

validate_zone(Text) ->
    Zone = string:trim(Text),
    case Zone of
        <<>> ->
            invalid(<<"backup_timezone must be an IANA zone name such as Europe/Berlin, or local">>);
        _ ->
            case emqx_guard_cron:zone_name(Zone) of
                {ok, _Iana} -> {ok, Zone};
                {error, _} = Error -> Error
            end
    end.

validate_duration(Name, N, Min) when is_integer(N) ->
    check_duration(Name, N, Min);
validate_duration(Name, Raw, Min) ->
    with_text(Raw, Name, fun(Text) ->
        case emqx_guard_render:parse_duration(Text) of
            {ok, Seconds} ->
                check_duration(Name, Seconds, Min);
            {error, Why} ->
                {error, {invalid_value, {Name, Why}}}
        end
    end).

check_duration(Name, Seconds, _Min) when Seconds < 0 ->
    invalid(<<Name/binary, " cannot be negative">>);
check_duration(Name, Seconds, Min) when Seconds < Min ->
    invalid(<<Name/binary, " must be longer than 0">>);
check_duration(Name, Seconds, _Min) when Seconds > ?MAX_DURATION_S ->
    invalid(<<Name/binary, " must be at most 366 days">>);
check_duration(_Name, Seconds, _Min) ->
    {ok, Seconds}.

with_text(Raw, Name, Fun) ->
    case emqx_guard_value:text(Raw) of
        {ok, Text} -> Fun(Text);
        error -> invalid(<<Name/binary, " must be text">>)
    end.

check_rate(Rate) when Rate < ?MIN_RATE -> invalid(<<"backup_io_limit must be at least 1MB/s (or off)">>);
check_rate(Rate) when Rate > 1000 * 1000000000 -> invalid(<<"backup_io_limit must be at most 1000GB/s">>);
check_rate(Rate) -> {ok, Rate}.

invalid(Line) ->
    {error, {invalid_value, Line}}.
