%% @doc The EMQX alarms (the dashboard's Alarms page): what raises and clears them.
%% `emqx_guard_backup_failed': the last backup failed. `emqx_guard_offsite_failed': the last
%% off-site job failed (`emqx_guard_offsite_queue' raises and clears it; turning off-site copies
%% off clears it). Alarms are per node and live in memory, so a node raises them again at start
%% when its recorded last run (or last off-site job) failed.
-module(emqx_guard_alarm).

-export([update/1, restore/1, unsupported/1, offsite_failed/2, offsite_cleared/1]).

-define(RECOVERED, <<"emqx_guard: the last backup succeeded">>).
-define(OFFSITE, emqx_guard_offsite_failed).
-define(OFFSITE_RECOVERED, <<"emqx_guard: the last off-site copy succeeded">>).
-define(OFFSITE_OFF, <<"emqx_guard: off-site copies were turned off">>).

%% @doc After a run: a failed run raises the alarm with its error line, a good one clears it,
%% a skipped one changes nothing.
-spec update(emqx_guard_outcome:outcome()) -> ok.
update(#{result := ok}) ->
    emqx_guard_emqx:deactivate_alarm(?RECOVERED);
update(#{result := failed} = Outcome) ->
    raise(Outcome);
update(_) ->
    ok.

%% @doc At start: raises the alarms again when the recorded last run failed.
-spec restore(undefined | emqx_guard_outcome:outcome()) -> ok.
restore(#{result := failed} = LastRun) ->
    raise(LastRun);
restore(_) ->
    ok.

%% @doc This EMQX cannot export at all: the alarm says why.
-spec unsupported(binary()) -> ok.
unsupported(Why) ->
    emqx_guard_emqx:activate_alarm(#{reason => Why}, Why).

raise(#{error := Error} = Outcome) ->
    emqx_guard_emqx:activate_alarm(
        maps:with([started_at, trigger, error], Outcome), <<"emqx_guard: backup failed: ", Error/binary>>
    ).

%% @doc The last off-site job failed with Error (one line): raises `emqx_guard_offsite_failed'.
-spec offsite_failed(binary(), map()) -> ok.
offsite_failed(Error, Details) ->
    emqx_guard_emqx:activate_alarm(?OFFSITE, Details, <<"emqx_guard: off-site copy failed: ", Error/binary>>).

%% @doc Off-site copies work again (`recovered'), or were turned off (`turned_off'): clears
%% `emqx_guard_offsite_failed'.
-spec offsite_cleared(recovered | turned_off) -> ok.
offsite_cleared(recovered) ->
    emqx_guard_emqx:deactivate_alarm(?OFFSITE, ?OFFSITE_RECOVERED);
offsite_cleared(turned_off) ->
    emqx_guard_emqx:deactivate_alarm(?OFFSITE, ?OFFSITE_OFF).
