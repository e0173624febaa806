%% @doc How emqx_guard writes times, sizes and durations for people: the one home for these
%% formats, used by the command line, the notifications and the logs.
%%
%% <ul>
%% <li>An instant: `2026-11-29 12:00:00 +01:00' (`instant/2', `in_zone/2'), and for machines
%%     (the webhook's JSON) ISO 8601 `2026-11-29T12:00:00+01:00' (`iso8601/2').</li>
%% <li>A size in binary units, one decimal from KiB on: `512 B', `1.5 MiB' (`size/1').</li>
%% <li>A run's duration: `850 ms', `12.3 s', `4 min 5 s' (`duration_ms/1').</li>
%% <li>A setting's duration, the shortest exact text: `24h', `90m', `45s', `0'
%%     (`duration_s/1'; `parse_duration/1' reads it back).</li>
%% <li>A read rate setting, the shortest exact text: `50MB/s', `512KiB/s', `off' (`rate/1';
%%     `parse_rate/1' reads it back).</li>
%% <li>Whether a term is text to show as it is (`printable/1').</li>
%% </ul>
-module(emqx_guard_render).

-export([instant/2, in_zone/2, iso8601/2, size/1, duration_ms/1, duration_s/1, rate/1]).
%% The settings' texts read back (the same formats, so a value round-trips).
-export([parse_duration/1, parse_rate/1]).
%% Whether a term is text to show as it is.
-export([printable/1]).

%% Seconds from year 0 (the calendar module's epoch) to 1970-01-01.
-define(UNIX_EPOCH_S, 62167219200).

%% @doc UnixMs shifted by OffsetSeconds, written `YYYY-MM-DD HH:MM:SS +HH:MM'.
-spec instant(integer(), integer()) -> binary().
instant(Ms, OffsetSeconds) ->
    {Date, Time} = local(Ms, OffsetSeconds),
    fmt("~ts ~ts ~ts", [date_text(Date), time_text(Time), offset_text(OffsetSeconds)]).

%% @doc UnixMs in Zone (an IANA name or `local') with the zone's offset at that instant, e.g.
%% `2026-11-29 12:00:00 +01:00'. When the zone cannot be used the instant is written in UTC.
-spec in_zone(binary(), integer()) -> binary().
in_zone(Zone, Ms) ->
    instant(Ms, offset(Zone, Ms)).

%% @doc UnixMs shifted by OffsetSeconds as ISO 8601 with seconds: `2026-11-29T12:00:00+01:00'.
-spec iso8601(integer(), integer()) -> binary().
iso8601(Ms, OffsetSeconds) ->
    {Date, Time} = local(Ms, OffsetSeconds),
    fmt("~tsT~ts~ts", [date_text(Date), time_text(Time), offset_text(OffsetSeconds)]).

%% @doc Bytes in binary units, one decimal from KiB on: `512 B', `12.3 KiB', `1.5 MiB'.
-spec size(non_neg_integer()) -> binary().
size(Bytes) when Bytes < 1024 ->
    fmt("~B B", [Bytes]);
size(Bytes) ->
    scaled(Bytes / 1024, ["KiB", "MiB", "GiB", "TiB"]).

scaled(X, [Unit]) ->
    fmt("~.1f ~ts", [X, Unit]);
scaled(X, [Unit | _]) when X < 1024 ->
    fmt("~.1f ~ts", [X, Unit]);
scaled(X, [_ | Units]) ->
    scaled(X / 1024, Units).

%% @doc A duration in milliseconds: `850 ms', `12.3 s', `4 min 5 s'.
-spec duration_ms(non_neg_integer()) -> binary().
duration_ms(Ms) when Ms < 1000 -> fmt("~B ms", [Ms]);
duration_ms(Ms) when Ms < 60000 -> fmt("~.1f s", [Ms / 1000]);
duration_ms(Ms) -> fmt("~B min ~B s", [Ms div 60000, (Ms rem 60000) div 1000]).

%% @doc Seconds as the shortest exact duration text: `24h', `90m', `45s', `0'.
-spec duration_s(non_neg_integer()) -> binary().
duration_s(0) -> <<"0">>;
duration_s(S) when S rem 3600 =:= 0 -> <<(integer_to_binary(S div 3600))/binary, "h">>;
duration_s(S) when S rem 60 =:= 0 -> <<(integer_to_binary(S div 60))/binary, "m">>;
duration_s(S) -> <<(integer_to_binary(S))/binary, "s">>.

%% @doc Bytes per second (or `off') as the shortest exact rate text: `50MB/s', `512KiB/s',
%% `1500000B/s', `off'.
-spec rate(off | pos_integer()) -> binary().
rate(off) ->
    <<"off">>;
rate(Bps) ->
    Units = [{1000000000, "GB"}, {1073741824, "GiB"}, {1000000, "MB"}, {1048576, "MiB"}, {1000, "kB"}, {1024, "KiB"}],
    case [{Bps div F, U} || {F, U} <- Units, Bps rem F =:= 0] of
        [{N, Unit} | _] -> fmt("~B~ts/s", [N, Unit]);
        [] -> fmt("~BB/s", [Bps])
    end.

%% @doc Parses a duration such as `24h', `90m', `1h30m', `45s', `2d' or a bare
%% number of seconds (`0' turns a feature off). Returns seconds, or `{bad_duration, Given}' (the
%% text trimmed; empty when there was none) for `emqx_guard_outcome:format_error/1' to say.
-spec parse_duration(binary() | string()) -> {ok, non_neg_integer()} | {error, {bad_duration, binary()}}.
parse_duration(Text) when is_list(Text) ->
    case unicode:characters_to_binary(Text) of
        Bin when is_binary(Bin) -> parse_duration(Bin);
        _ -> {error, {bad_duration, <<>>}}
    end;
parse_duration(Text) when is_binary(Text) ->
    case string:lowercase(string:trim(Text)) of
        <<>> ->
            {error, {bad_duration, <<>>}};
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
            {error, {bad_duration, string:trim(Original)}}
    end.

unit_seconds(<<"d">>) -> 86400;
unit_seconds(<<"h">>) -> 3600;
unit_seconds(<<"m">>) -> 60;
unit_seconds(<<"s">>) -> 1.

%% @doc Parses a read rate: `off' (or `0'), or a whole number of bytes per second with an
%% optional decimal (kB, MB, GB) or binary (KiB, MiB, GiB) unit and `/s': `50MB/s', `1GiB'; or
%% `{bad_rate, Given}'.
-spec parse_rate(binary()) -> {ok, off | non_neg_integer()} | {error, {bad_rate, binary()}}.
parse_rate(Text) ->
    T = string:lowercase(string:trim(Text)),
    Units = #{<<>> => 1, <<"b">> => 1, <<"kb">> => 1000, <<"mb">> => 1000000, <<"gb">> => 1000000000,
              <<"kib">> => 1024, <<"mib">> => 1048576, <<"gib">> => 1073741824},
    case re:run(T, <<"^([0-9]+) *([a-z]*)(/s)?$">>, [{capture, [1, 2], binary}]) of
        _ when T =:= <<"off">>; T =:= <<"0">> -> {ok, off};
        {match, [N, U]} when is_map_key(U, Units) -> {ok, binary_to_integer(N) * maps:get(U, Units)};
        _ -> {error, {bad_rate, string:trim(Text)}}
    end.

%% @doc `{true, Chars}' when Term is text a person can read as it is (a non-empty printable
%% charlist, or a binary holding one in UTF-8); `false' for anything else.
-spec printable(term()) -> {true, string()} | false.
printable(B) when is_binary(B) ->
    case unicode:characters_to_list(B) of
        L when is_list(L) -> printable(L);
        _ -> false
    end;
printable(L) when is_list(L), L =/= [] ->
    case io_lib:printable_unicode_list(L) of
        true -> {true, L};
        false -> false
    end;
printable(_) ->
    false.

%%--------------------------------------------------------------------------------------------

local(Ms, OffsetSeconds) ->
    calendar:gregorian_seconds_to_datetime(Ms div 1000 + OffsetSeconds + ?UNIX_EPOCH_S).

date_text({Y, Mo, D}) ->
    fmt("~4..0B-~2..0B-~2..0B", [Y, Mo, D]).

time_text({H, Mi, S}) ->
    fmt("~2..0B:~2..0B:~2..0B", [H, Mi, S]).

offset_text(OffsetSeconds) ->
    Sign =
        case OffsetSeconds < 0 of
            true -> $-;
            false -> $+
        end,
    Abs = abs(OffsetSeconds),
    fmt("~c~2..0B:~2..0B", [Sign, Abs div 3600, (Abs rem 3600) div 60]).

offset(Zone, Ms) ->
    case emqx_guard_core:utc_offset(Zone, Ms) of
        {ok, Offset} -> Offset;
        {error, _} -> 0
    end.

fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).
