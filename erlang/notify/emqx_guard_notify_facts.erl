%% @doc The facts a notification shows: the run outcome as the run made it, plus what only the
%% node knows when the message is made (node, zone, next scheduled backup, the backups now
%% kept, the zone's UTC offset at each instant), gathered through `emqx_guard_core'.
%%
%% A run outcome (`emqx_guard_notify:run_finished/1') is the facts of `backup_ok' and
%% `backup_failed' as it is: `result', `trigger', `started_at', `duration_ms', `node', and as
%% the run knew them `file', `path', `size', `sha256', `version', `pruned', `error',
%% `warnings'. `dead_man' and `test' have their own small facts (`time', `last_success',
%% `deadline'). `emqx_guard_notify_format' documents the enriched keys.
%%
%% Only a backup that was made or failed here is told: a skipped fire (another node exports it,
%% or a run was still going) is no event at all (`event_of/1').
-module(emqx_guard_notify_facts).

-include_lib("kernel/include/logger.hrl").

-export([event_of/1, restore_event_of/1, enrich/2, zone_setting/1]).

%% The instants a notification may show, each with its zone offset in `offsets'.
-define(INSTANTS, [started_at, time, next_fire, last_success, deadline]).

%% @doc The event of a run outcome, named for every result: `backup_ok' for `result := ok',
%% `backup_failed' for `result := failed', `none' (nothing is sent) for `result := skipped' (the
%% node that exported the fire tells about it) and for a run not closed yet. Any other shape is
%% `none' too, and logged: it is never taken for a failure.
-spec event_of(map()) -> backup_ok | backup_failed | none.
event_of(#{result := ok}) ->
    backup_ok;
event_of(#{result := failed}) ->
    backup_failed;
event_of(#{result := skipped}) ->
    none;
event_of(#{result := running}) ->
    none;
event_of(Other) ->
    ?LOG_WARNING(#{msg => emqx_guard_notify_unknown_outcome, result => maps:get(result, Other, undefined)}),
    none.

%% @doc The event of a restore's end (`emqx_guard_restore'), named for each result:
%% `restore_done' for `result := ok', `restore_failed' for `result := failed'. A restore refused
%% in its preflight changed nothing and is no event (it never gets here).
-spec restore_event_of(#{result := ok | failed, atom() => term()}) -> restore_done | restore_failed.
restore_event_of(#{result := ok}) -> restore_done;
restore_event_of(#{result := failed}) -> restore_failed.

%% @doc Facts with node, zone, next fire, kept backups and zone offsets added (what is given
%% stays; what cannot be found is left out). Without `started_at' the message is dated now
%% (`time').
-spec enrich(emqx_guard_notify_format:facts(), map()) -> emqx_guard_notify_format:facts().
enrich(Facts0, Settings) ->
    Now = erlang:system_time(millisecond),
    Dated =
        case maps:is_key(started_at, Facts0) of
            true -> #{};
            false -> #{time => Now}
        end,
    Facts1 = maps:merge(Dated#{node => node()}, Facts0),
    Zone = ok_or(emqx_guard_core:resolve_zone(zone_setting(Settings))),
    Next =
        case {maps:get(backup_cron, Settings, undefined), Zone} of
            {undefined, _} -> undefined;
            {_, undefined} -> undefined;
            {Cron, _} -> first(ok_or(emqx_guard_core:next_fires(Cron, Zone, Now, 1)))
        end,
    Kept =
        case ok_or(emqx_guard_core:list_backups(emqx_guard_emqx:backup_dir())) of
            L when is_list(L) -> [maps:with([name, size, mtime], B) || B <- L];
            undefined -> undefined
        end,
    Facts2 = maps:merge(
        maps:filter(fun(_, V) -> V =/= undefined end, #{zone => Zone, next_fire => Next, kept => Kept}),
        Facts1
    ),
    Offsets = maps:from_list([
        {K, Off}
     || Zone =/= undefined,
        K <- ?INSTANTS,
        is_integer(maps:get(K, Facts2, undefined)),
        Off <- [offset(Zone, maps:get(K, Facts2))]
    ]),
    Facts2#{offsets => Offsets}.

%% @doc The `backup_timezone' setting as a binary (`local' when unset).
-spec zone_setting(map()) -> binary().
zone_setting(Settings) ->
    case maps:get(backup_timezone, Settings, <<"local">>) of
        Z when is_binary(Z) -> Z;
        Z -> unicode:characters_to_binary(Z)
    end.

offset(Zone, Ms) ->
    case emqx_guard_core:utc_offset(Zone, Ms) of
        {ok, Off} -> Off;
        {error, _} -> 0
    end.

first([X | _]) -> X;
first(_) -> undefined.

ok_or({ok, V}) -> V;
ok_or({error, _}) -> undefined.
