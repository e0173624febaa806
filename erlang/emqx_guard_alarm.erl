%% @doc The EMQX alarms (the dashboard's Alarms page): what raises and clears them.
%% `emqx_guard_backup_failed': the last backup failed. `emqx_guard_offsite_failed': the last
%% backup is good but its off-site copy failed (`emqx_guard_offsite'). Alarms are per node and
%% live in memory, so a node raises them again at start when its recorded last run failed.
-module(emqx_guard_alarm).

-export([update/1, restore/1, unsupported/1]).

-define(RECOVERED, <<"emqx_guard: the last backup succeeded">>).
-define(OFFSITE, emqx_guard_offsite_failed).
-define(OFFSITE_RECOVERED, <<"emqx_guard: the last off-site copy succeeded">>).

%% @doc After a run: a failed run raises the alarm with its error line, a good one clears it,
%% a skipped one changes nothing. The off-site alarm follows a good run's `offsite' result (a
%% run without one, e.g. with remote copies off, leaves it as it is).
-spec update(emqx_guard_outcome:outcome()) -> ok.
update(#{result := ok} = Outcome) ->
    ok = emqx_guard_emqx:deactivate_alarm(?RECOVERED),
    offsite(Outcome);
update(#{result := failed} = Outcome) ->
    raise(Outcome);
update(_) ->
    ok.

%% @doc At start: raises the alarms again when the recorded last run failed.
-spec restore(undefined | emqx_guard_outcome:outcome()) -> ok.
restore(#{result := failed} = LastRun) ->
    raise(LastRun);
restore(#{result := ok, offsite := #{result := failed}} = LastRun) ->
    offsite(LastRun);
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

offsite(#{offsite := #{result := failed, error := Error}} = Outcome) ->
    emqx_guard_emqx:activate_alarm(
        ?OFFSITE,
        (maps:with([started_at, file], Outcome))#{error => Error},
        <<"emqx_guard: off-site copy failed: ", Error/binary>>
    );
offsite(#{offsite := #{result := ok}}) ->
    emqx_guard_emqx:deactivate_alarm(?OFFSITE, ?OFFSITE_RECOVERED);
offsite(_) ->
    ok.
