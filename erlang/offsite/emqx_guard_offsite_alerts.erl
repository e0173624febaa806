%% @doc What people hear of the off-site copies (`emqx_guard_offsite_queue'): the EMQX alarm
%% `emqx_guard_offsite_failed' (`emqx_guard_alarm') and the `offsite_failed' / `offsite_ok'
%% notifications (`emqx_guard_notify'), once per run of failures: the first failed job raises
%% the alarm and sends `offsite_failed' (later failures only update the alarm's line), the next
%% job that passes clears it and sends `offsite_ok'. Turning off-site copies off clears the
%% alarm; a node that starts while the last job failed raises it again (alarms live in memory).
-module(emqx_guard_offsite_alerts).

-export([passed/3, failed/3, turned_off/0, restore/1]).

%% @doc A job passed with Result (`emqx_guard_offsite:result()'), for Backup (`undefined': a job
%% without a backup of its own); WasFailing: the jobs before it failed.
-spec passed(emqx_guard_offsite:result(), undefined | emqx_guard_offsite_state:backup(), boolean()) -> ok.
passed(_Result, _Backup, false) ->
    ok;
passed(Result, Backup, true) ->
    emqx_guard_alarm:offsite_cleared(recovered),
    emqx_guard_notify:notify(offsite_ok, with_file(last_file(Result, Backup), #{offsite => Result, destination => where()})).

%% @doc A job for Backup failed with the line Error; WasFailing: the job before it failed too.
-spec failed(binary(), undefined | emqx_guard_offsite_state:backup(), boolean()) -> ok.
failed(Error, Backup, WasFailing) ->
    alarm(Error),
    case WasFailing of
        %% the error is the news (the result's own line would only repeat it)
        false -> emqx_guard_notify:notify(offsite_failed, with_file(file_of(Backup), #{error => Error, destination => where()}));
        true -> ok
    end.

%% @doc Off-site copies were turned off: the alarm is cleared.
-spec turned_off() -> ok.
turned_off() ->
    emqx_guard_alarm:offsite_cleared(turned_off).

%% @doc At start: the alarm raised again while the last job failed and a destination is set.
-spec restore(emqx_guard_offsite_state:state()) -> ok.
restore(#{failing := true, last_error := #{error := Error}}) ->
    case emqx_guard_offsite_config:enabled(emqx_guard_settings:get()) of
        true -> alarm(Error);
        false -> ok
    end;
restore(_State) ->
    ok.

alarm(Error) ->
    emqx_guard_alarm:offsite_failed(Error, #{error => Error}).

%% The destination as the notifications name it.
where() ->
    case emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()) of
        {ok, Config} -> emqx_guard_offsite:where(Config);
        off -> <<"off">>
    end.

last_file(#{uploads := [_ | _] = Uploads}, _Backup) -> maps:get(file, lists:last(Uploads));
last_file(_Result, Backup) -> file_of(Backup).

with_file(undefined, Facts) -> Facts;
with_file(File, Facts) -> Facts#{file => File}.

file_of(#{file := F}) -> F;
file_of(_) -> undefined.
