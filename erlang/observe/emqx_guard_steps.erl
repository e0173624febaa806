%% @doc The steps of a long job as whoever waits for it sees them while they run: a backup run
%% (`guard backup_now'), a download (`backup_fetch'), a full check of every backup
%% (`backup_verify --all'), a restore (`backup_restore'). The job reports each step as it starts and ends,
%% with what it did (`event()'); the command prints each one as it comes
%% (`emqx_guard_steps_cli'), the way EMQX's own `data export' prints its steps.
%%
%% The channel: output reaches the operator's terminal only from the process that runs the
%% command (`emqx_ctl:print' from the calling process, EMQX_CONTRACT.md), so the job never prints.
%% A job that runs in the command's own process reports to a fun that prints. A backup runs in the
%% scheduler's worker: its reports go to the scheduler, each one a call (`to_server/1', so they
%% keep their order with the run's end), and the scheduler sends them on to the command's process
%% (`emqx_guard_scheduler:run_now/1'), which waits for them and prints them
%% (`emqx_guard_steps_cli:follow/2').
%%
%% Progress of a long step (`{progress, Step, Facts}') comes at most once a second: a step that
%% reports more often (retention, after each file) goes through `throttled/1'.
-module(emqx_guard_steps).

-export([throttled/1, to_server/1, since/1, noop/1]).

-export_type([event/0, step/0, report/0]).

%% The steps of a backup run, a download and a full check (a restore adds its own).
-type step() :: export | protect | verify | prune | copy | offsite | fetch | atom().
%% What a job reports: a step started (with what it is about), said a line of its own (EMQX's
%% export, as EMQX words it), made progress, ended (with what it did), gave a warning or failed
%% (with its error line).
-type event() ::
    {started, step(), map()}
    | {line, step(), binary()}
    | {progress, step(), map()}
    | {done, step(), map()}
    | {warned, step(), map()}
    | {failed, step(), map()}.
-type report() :: fun((event()) -> term()).

%% The shortest time between two progress reports of one step.
-define(PROGRESS_MS, 1000).

%% @doc Report, with every progress event dropped that comes less than a second after the last
%% one let through (or after the fun was made, when the step started). Other events pass.
-spec throttled(report()) -> report().
throttled(Report) ->
    Last = atomics:new(1, [{signed, true}]),
    ok = atomics:put(Last, 1, erlang:monotonic_time(millisecond)),
    fun
        (Event = {progress, _, _}) ->
            Now = erlang:monotonic_time(millisecond),
            case Now - atomics:get(Last, 1) >= ?PROGRESS_MS of
                true ->
                    ok = atomics:put(Last, 1, Now),
                    Report(Event);
                false ->
                    ok
            end;
        (Event) ->
            Report(Event)
    end.

%% @doc The report of a job that runs in a process of its own (a backup run's worker) to the
%% Server that follows it (the scheduler): each event a call `{step, self(), Event}', so Server
%% has it, and has sent it on, before the job goes on. A Server that does not answer is ignored.
-spec to_server(pid()) -> report().
to_server(Server) ->
    fun(Event) ->
        try
            gen_server:call(Server, {step, self(), Event}, 15000)
        catch
            exit:_ -> ok
        end
    end.

%% @doc Milliseconds since T0 (`erlang:monotonic_time(millisecond)').
-spec since(integer()) -> non_neg_integer().
since(T0) ->
    max(erlang:monotonic_time(millisecond) - T0, 0).

%% @doc A report that goes nowhere (a job no one waits for).
-spec noop(event()) -> ok.
noop(_Event) ->
    ok.
