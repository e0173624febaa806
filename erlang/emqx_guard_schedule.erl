%% @doc Schedule arithmetic on top of the NIF: the next fire, a preview of the
%% next fires with their UTC offsets, the catch-up decision, and how an instant
%% is written for people (`2026-11-29 12:00:00 +01:00').
%%
%% All instants are UTC milliseconds. Every NIF error, including a NIF that is
%% not loaded and arguments it refuses (badarg), comes back as `{error, Line}'
%% with one human line.
-module(emqx_guard_schedule).

-export([
    validate/1,
    next_fire/3,
    preview/4,
    catchup_instant/5,
    describe/1,
    zone_name/1,
    format_instant/2,
    format_in_zone/2
]).

-export_type([fire/0]).

%% An instant and the zone's UTC offset (seconds) at that instant.
-type fire() :: {UnixMs :: integer(), OffsetSeconds :: integer()}.

%% @doc Checks a cron expression; returns it normalized (trimmed, single-spaced).
-spec validate(binary()) -> {ok, binary()} | {error, binary()}.
validate(Cron) ->
    nif(fun() -> emqx_guard_nif:validate(Cron) end).

%% @doc The first fire strictly after AfterMs.
-spec next_fire(binary(), binary(), integer()) -> {ok, integer()} | {error, binary()}.
next_fire(Cron, Zone, AfterMs) ->
    case nif(fun() -> emqx_guard_nif:next_fires(Cron, Zone, AfterMs, 1) end) of
        {ok, [Next | _]} -> {ok, Next};
        {ok, []} -> {error, <<"the schedule never fires">>};
        {error, _} = Error -> Error
    end.

%% @doc The zone's IANA name, the schedule in English and the next N fires
%% after AfterMs with the zone's offset at each.
-spec preview(binary(), binary(), integer(), pos_integer()) ->
    {ok, #{zone_name := binary(), description := binary(), fires := [fire()]}} | {error, binary()}.
preview(Cron, Zone, AfterMs, N) ->
    maybe_all([
        fun() -> zone_name(Zone) end,
        fun() -> describe(Cron) end,
        fun() -> nif(fun() -> emqx_guard_nif:next_fires(Cron, Zone, AfterMs, N) end) end
    ], fun([ZoneName, Description, Fires]) ->
        WithOffsets = [{Ms, offset(Zone, Ms)} || Ms <- Fires],
        {ok, #{zone_name => ZoneName, description => Description, fires => WithOffsets}}
    end).

%% @doc Decides whether a scheduled instant was missed while the node was down.
%% Ref is the last instant acted upon (last fire or last run start), or
%% `undefined' for a fresh install (nothing to catch up). The missed instant
%% must lie after Ref, at or before Now, and within WindowS seconds before Now.
%% When several were missed, the latest one is returned: one catch-up run, never
%% a backlog.
-spec catchup_instant(binary(), binary(), integer() | undefined, integer(), non_neg_integer()) ->
    {ok, integer()} | none | {error, binary()}.
catchup_instant(_Cron, _Zone, undefined, _Now, _WindowS) ->
    none;
catchup_instant(_Cron, _Zone, _Ref, _Now, 0) ->
    none;
catchup_instant(Cron, Zone, Ref, Now, WindowS) ->
    From = max(Ref, Now - WindowS * 1000),
    case next_fire(Cron, Zone, From) of
        {ok, First} when First =< Now -> {ok, latest_missed(Cron, Zone, First, Now)};
        {ok, _Future} -> none;
        {error, _} = Error -> Error
    end.

%% Walks forward in bounded batches to the last instant at or before Now.
latest_missed(Cron, Zone, Last, Now) ->
    case nif(fun() -> emqx_guard_nif:next_fires(Cron, Zone, Last, 64) end) of
        {ok, Fires} ->
            case [F || F <- Fires, F =< Now] of
                [] -> Last;
                Passed when length(Passed) =:= length(Fires) -> latest_missed(Cron, Zone, lists:last(Passed), Now);
                Passed -> lists:last(Passed)
            end;
        {error, _} ->
            Last
    end.

%% @doc The schedule in plain English.
-spec describe(binary()) -> {ok, binary()} | {error, binary()}.
describe(Cron) ->
    nif(fun() -> emqx_guard_nif:describe(Cron) end).

%% @doc The IANA name of a zone (`local' becomes the node's zone).
-spec zone_name(binary()) -> {ok, binary()} | {error, binary()}.
zone_name(Zone) ->
    nif(fun() -> emqx_guard_nif:resolve_zone(Zone) end).

%% @doc An instant written in the given zone with its offset, e.g.
%% `2026-11-29 12:00:00 +01:00'. When the zone cannot be used the instant is
%% written in UTC (`+00:00').
-spec format_in_zone(binary(), integer()) -> binary().
format_in_zone(Zone, Ms) ->
    format_instant(Ms, offset(Zone, Ms)).

%% @doc Writes UnixMs shifted by OffsetSeconds as `YYYY-MM-DD HH:MM:SS +HH:MM'.
-spec format_instant(integer(), integer()) -> binary().
format_instant(Ms, OffsetSeconds) ->
    LocalSeconds = Ms div 1000 + OffsetSeconds,
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_universal_time(LocalSeconds, second),
    Sign =
        case OffsetSeconds < 0 of
            true -> $-;
            false -> $+
        end,
    Abs = abs(OffsetSeconds),
    iolist_to_binary(
        io_lib:format("~4..0B-~2..0B-~2..0B ~2..0B:~2..0B:~2..0B ~c~2..0B:~2..0B", [
            Y, Mo, D, H, Mi, S, Sign, Abs div 3600, (Abs rem 3600) div 60
        ])
    ).

offset(Zone, Ms) ->
    case nif(fun() -> emqx_guard_nif:utc_offset(Zone, Ms) end) of
        {ok, Offset} when is_integer(Offset) -> Offset;
        _ -> 0
    end.

maybe_all(Steps, Done) ->
    maybe_all(Steps, [], Done).

maybe_all([], Acc, Done) ->
    Done(lists:reverse(Acc));
maybe_all([Step | Rest], Acc, Done) ->
    case Step() of
        {ok, Value} -> maybe_all(Rest, [Value | Acc], Done);
        {error, _} = Error -> Error
    end.

nif(Fun) ->
    try Fun() of
        {ok, _} = Ok -> Ok;
        {error, {_Reason, Detail}} when is_binary(Detail) -> {error, Detail};
        {error, Other} -> {error, iolist_to_binary(io_lib:format("~tp", [Other]))}
    catch
        error:{nif_not_loaded, _Path, Reason} ->
            {error, iolist_to_binary(io_lib:format("the emqx_guard NIF is not loaded: ~tp", [Reason]))};
        error:undef ->
            {error, <<"the emqx_guard NIF module is missing">>};
        error:badarg ->
            %% e.g. an instant outside what the NIF takes (a damaged stored state)
            {error, <<"the schedule cannot be computed for these arguments (an instant out of range?)">>}
    end.
