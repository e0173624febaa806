%% @doc Cron arithmetic on top of the Rust core (`emqx_guard_core'): validation, the next fire,
%% a preview of the next fires with their UTC offsets, and the catch-up decision.
%%
%% All instants are UTC milliseconds. Every failure, including a library that is not loaded and
%% arguments the core refuses, comes back as `{error, {schedule, Why}}' (`error()'): Why is the
%% core's `{Reason, Detail}', or `never_fires'; `emqx_guard_outcome:format_error/1' says it in
%% one line (the core's Detail; for arguments the core refuses, that they are out of range).
-module(emqx_guard_cron).

-include_lib("kernel/include/logger.hrl").

-export([
    validate/1,
    next_fire/3,
    search_from/2,
    preview/4,
    catchup_instant/5,
    describe/1,
    zone_name/1
]).

-export_type([fire/0, error/0]).

%% An instant and the zone's UTC offset (seconds) at that instant.
-type fire() :: {UnixMs :: integer(), OffsetSeconds :: integer()}.

-type error() :: {schedule, never_fires | {atom(), binary()}}.

%% A last fired instant further ahead than this means the clock was wrong when it ran.
-define(FUTURE_LAST_FIRED_MS, 86400000).

%% @doc Checks a cron expression; returns it normalized (trimmed, single-spaced).
-spec validate(binary()) -> {ok, binary()} | {error, error()}.
validate(Cron) ->
    schedule(emqx_guard_core:validate(Cron)).

%% @doc The first fire strictly after AfterMs.
-spec next_fire(binary(), binary(), integer()) -> {ok, integer()} | {error, error()}.
next_fire(Cron, Zone, AfterMs) ->
    case schedule(emqx_guard_core:next_fires(Cron, Zone, AfterMs, 1)) of
        {ok, [Next | _]} -> {ok, Next};
        {ok, []} -> {error, {schedule, never_fires}};
        {error, _} = Error -> Error
    end.

%% @doc The instant the next fire is searched after: now, or the last fired instant when that
%% is later (an instant already run never runs again). A last fired instant more than a day
%% ahead is logged: the clock was probably far ahead when that run happened.
-spec search_from(integer() | undefined, integer()) -> integer().
search_from(undefined, Now) ->
    Now;
search_from(LastFired, Now) when LastFired > Now + ?FUTURE_LAST_FIRED_MS ->
    ?LOG_WARNING(#{
        msg => emqx_guard_last_fired_in_future,
        last_fired => LastFired,
        now => Now,
        hint => <<"scheduled backups resume after this instant; backup_now still works">>
    }),
    LastFired;
search_from(LastFired, Now) ->
    max(Now, LastFired).

%% @doc The zone's IANA name, the schedule in English and the next N fires
%% after AfterMs with the zone's offset at each.
-spec preview(binary(), binary(), integer(), pos_integer()) ->
    {ok, #{zone_name := binary(), description := binary(), fires := [fire()]}} | {error, error()}.
preview(Cron, Zone, AfterMs, N) ->
    maybe_all([
        fun() -> zone_name(Zone) end,
        fun() -> describe(Cron) end,
        fun() -> schedule(emqx_guard_core:next_fires(Cron, Zone, AfterMs, N)) end
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
    {ok, integer()} | none | {error, error()}.
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
    case schedule(emqx_guard_core:next_fires(Cron, Zone, Last, 64)) of
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
-spec describe(binary()) -> {ok, binary()} | {error, error()}.
describe(Cron) ->
    schedule(emqx_guard_core:describe(Cron)).

%% @doc The IANA name of a zone (`local' becomes the node's zone).
-spec zone_name(binary()) -> {ok, binary()} | {error, error()}.
zone_name(Zone) ->
    schedule(emqx_guard_core:resolve_zone(Zone)).

offset(Zone, Ms) ->
    case emqx_guard_core:utc_offset(Zone, Ms) of
        {ok, Offset} -> Offset;
        {error, _} -> 0
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

%% The core's answer, its error tagged as the schedule's.
schedule({ok, _} = Ok) ->
    Ok;
schedule({error, Why}) ->
    {error, {schedule, Why}}.
