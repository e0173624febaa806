%% @doc The long jobs the plugin API starts, kept while they run and after: a backup
%% (`POST backups'), a full check of one backup (`POST backups/<name>/verify'), a restore
%% (`POST backups/<name>/restore') and the test of the notification channels
%% (`POST notify/test'). EMQX's plugin API gateway gives a call 5 s, so the API starts a job here
%% and answers at once with its id; the page polls `GET runs/<id>' (`get/1').
%%
%% Each job runs where its command runs it, through the same functions: a backup in the
%% scheduler's worker (`emqx_guard_scheduler:run_now/1', which sends this server the run's steps
%% and its end, as it sends them to `guard backup_now'), the others in a process of their own
%% that this server monitors (`emqx_guard_backups:verify_all/3', `emqx_guard_restore:restore/2',
%% `emqx_guard_notify:send_test/0'), reporting their steps (`emqx_guard_steps:event()') here.
%% A job's document (`doc()') keeps each step with its line (`emqx_guard_steps_cli:line/1', the
%% words the command prints) and its time, then the result. One job of each kind at a time.
%%
%% Every other backup run on this node is kept here too, with its steps: the scheduler makes this
%% server a follower of each run it starts (`observe/2'), scheduled, caught up, typed
%% (`guard backup_now') or a restore's safety backup; its `trigger' says which (`api' for what was
%% started here). Only the newest `?KEEP' jobs are kept, in memory, since this server started.
-module(emqx_guard_api_jobs).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, start/2, get/1, list/0, latest/1, observe/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([kind/0, doc/0]).

%% get/1 is a job's document, not the process dictionary.
-compile({no_auto_import, [get/1]}).

-define(SERVER, ?MODULE).
%% How many jobs are kept (the newest).
-define(KEEP, 20).
%% How many steps one job keeps (progress replaces the step's previous progress).
-define(MAX_STEPS, 400).

-type kind() :: backup | verify | restore | notify_test.
-type doc() :: #{binary() => term()}.

%% @doc Starts the server (the plugin's supervisor does).
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Starts a job: `backup' (Args `#{}'), `verify' (`#{name := Name}'), `restore'
%% (`#{name := Name, dry_run := boolean()}'), `notify_test' (`#{}'). Answers at once with the
%% job's document, or why it cannot start: `{busy, Id}' while a job of that kind runs, or the
%% scheduler's refusal of a backup (`emqx_guard_scheduler:run_now/1').
-spec start(kind(), map()) -> {ok, doc()} | {error, {busy, binary()} | emqx_guard_scheduler:reason()}.
start(Kind, Args) ->
    gen_server:call(?SERVER, {start, Kind, Args}, 20000).

%% @doc The document of job Id, or `{error, not_found}'.
-spec get(binary()) -> {ok, doc()} | {error, not_found}.
get(Id) ->
    gen_server:call(?SERVER, {get, Id}).

%% @doc The kept jobs, newest first.
-spec list() -> [doc()].
list() ->
    gen_server:call(?SERVER, list).

%% @doc The newest job of Kind, or `{error, not_found}'.
-spec latest(kind()) -> {ok, doc()} | {error, not_found}.
latest(Kind) ->
    gen_server:call(?SERVER, {latest, Kind}).

%% @doc Called by the scheduler, in its process, as it starts a backup run of Trigger: Followers
%% (the processes that follow the run's steps, `emqx_guard_scheduler:run_now/1') with this server
%% added, unless it follows already (a backup started here) or is not running. The run's steps and
%% end then come here as to any follower, and the run is a job (`list/0', `get/1') with its trigger.
%% Never blocks: one message.
-spec observe(emqx_guard_outcome:trigger(), [{pid(), reference()}]) -> [{pid(), reference()}].
observe(Trigger, Followers) ->
    case whereis(?SERVER) of
        undefined ->
            Followers;
        Server ->
            case lists:keymember(Server, 1, Followers) of
                true ->
                    Followers;
                false ->
                    Ref = make_ref(),
                    Server ! {emqx_guard_run_started, Ref, Trigger, self()},
                    Followers ++ [{Server, Ref}]
            end
    end.

%%--------------------------------------------------------------------

%% State: `jobs' (id => job, newest first in `order'), `by' (a monitor or run ref => id).
init([]) ->
    {ok, #{jobs => #{}, order => [], by => #{}}}.

handle_call({start, Kind, Args}, _From, State) ->
    case running(Kind, State) of
        {ok, Id} ->
            {reply, {error, {busy, Id}}, State};
        none ->
            Id = new_id(Kind),
            case launch(Kind, Id, Args) of
                {ok, Key} ->
                    Job = new_job(Id, Kind, api, Args),
                    {reply, {ok, doc(Job)}, remember(Job, Key, State)};
                {error, _} = Error ->
                    {reply, Error, State}
            end
    end;
handle_call({get, Id}, _From, State = #{jobs := Jobs}) ->
    case maps:find(Id, Jobs) of
        {ok, Job} -> {reply, {ok, doc(Job)}, State};
        error -> {reply, {error, not_found}, State}
    end;
handle_call(list, _From, State = #{jobs := Jobs, order := Order}) ->
    {reply, [doc(maps:get(Id, Jobs)) || Id <- Order], State};
handle_call({latest, Kind}, _From, State = #{jobs := Jobs, order := Order}) ->
    case [Id || Id <- Order, maps:get(kind, maps:get(Id, Jobs)) =:= Kind] of
        [Id | _] -> {reply, {ok, doc(maps:get(Id, Jobs))}, State};
        [] -> {reply, {error, not_found}, State}
    end;
handle_call(Request, _From, State) ->
    {reply, {error, {unknown_call, Request}}, State}.

handle_cast(_Msg, State) ->
    {noreply, State}.

%% A backup run the scheduler started (not here): followed as one started here.
handle_info({emqx_guard_run_started, Ref, Trigger, Scheduler}, State) ->
    MRef = monitor(process, Scheduler),
    {noreply, remember(new_job(new_id(Trigger), backup, Trigger, #{}), {Ref, MRef}, State)};
%% A backup's steps and end, from the scheduler (keyed by the run's Ref).
handle_info({emqx_guard_step, Ref, {finished, Result}}, State) ->
    {noreply, finish(Ref, Result, State)};
handle_info({emqx_guard_step, Ref, Event}, State) ->
    {noreply, step(Ref, Event, State)};
%% The other jobs' steps and end, from their process (keyed by its monitor).
handle_info({emqx_guard_api_step, MRef, Event}, State) ->
    {noreply, step(MRef, Event, State)};
handle_info({emqx_guard_api_done, MRef, Result}, State) ->
    demonitor(MRef, [flush]),
    {noreply, finish(MRef, Result, State)};
handle_info({'DOWN', MRef, process, _, Why}, State = #{by := By}) ->
    %% a job's process, or the scheduler running a backup, went away before its end
    Keys = [K || K = {_, M} <- maps:keys(By), M =:= MRef] ++ [MRef || maps:is_key(MRef, By)],
    {noreply, lists:foldl(fun(K, S) -> finish(K, {died, Why}, S) end, State, Keys)};
handle_info(_Msg, State) ->
    {noreply, State}.

%%--------------------------------------------------------------------

%% A job of Kind started here that runs (a run the scheduler started is the scheduler's to refuse).
running(Kind, #{jobs := Jobs, order := Order}) ->
    case [Id || Id <- Order, #{kind := K, state := running, trigger := api} <- [maps:get(Id, Jobs)], K =:= Kind] of
        [Id | _] -> {ok, Id};
        [] -> none
    end.

new_job(Id, Kind, Trigger, Args) ->
    #{id => Id, kind => Kind, trigger => Trigger, target => maps:get(name, Args, null), args => maps:remove(name, Args),
      started_at => os:system_time(millisecond), ended_at => undefined, state => running, steps => [], result => null,
      error => null}.

new_id(Kind) ->
    iolist_to_binary(io_lib:format("~ts-~B-~B", [Kind, os:system_time(millisecond), erlang:unique_integer([positive])])).

%% Starts the job; its key is how its messages are told apart: the run's Ref (with the
%% scheduler's monitor) for a backup, the monitor of its process for the others.
launch(backup, _Id, _Args) ->
    case whereis(emqx_guard_scheduler) of
        undefined ->
            {error, {not_running, <<"the emqx_guard scheduler is not running">>}};
        Scheduler ->
            Ref = make_ref(),
            MRef = monitor(process, Scheduler),
            try emqx_guard_scheduler:run_now({self(), Ref}) of
                {started, _At} ->
                    {ok, {Ref, MRef}};
                {refused, Why} ->
                    demonitor(MRef, [flush]),
                    {error, Why}
            catch
                exit:Reason ->
                    demonitor(MRef, [flush]),
                    {error, {not_running, text("the emqx_guard scheduler did not answer: ~0tP", [Reason, 8])}}
            end
    end;
launch(Kind, _Id, Args) ->
    Server = self(),
    {Pid, MRef} = spawn_monitor(fun() ->
        receive
            {go, M} -> Server ! {emqx_guard_api_done, M, work(Kind, Args, fun(Event) -> Server ! {emqx_guard_api_step, M, Event}, ok end)}
        end
    end),
    Pid ! {go, MRef},
    {ok, MRef}.

%% What a job does, through the function its command calls.
work(verify, #{name := Name}, Report) ->
    emqx_guard_backups:verify_all(emqx_guard_emqx:backup_dir(), Name, emqx_guard_steps:throttled(Report));
work(restore, #{name := Name, dry_run := DryRun}, Report) ->
    emqx_guard_restore:restore(Name, #{dry_run => DryRun, report => emqx_guard_steps:throttled(Report)});
work(notify_test, _Args, _Report) ->
    emqx_guard_notify:send_test().

remember(Job = #{id := Id}, Key, State = #{jobs := Jobs, order := Order, by := By}) ->
    {Keep, Drop} = lists:split(min(length(Order), ?KEEP - 1), Order),
    Dropped = [D || D <- Drop, maps:get(state, maps:get(D, Jobs)) =/= running],
    State#{jobs => maps:put(Id, Job, maps:without(Dropped, Jobs)), order => [Id | Keep ++ (Drop -- Dropped)],
           by => By#{Key => Id}}.

%% The job a message is for: a process's monitor, or a backup's run Ref.
job_key(Key, #{by := By}) ->
    case maps:find(Key, By) of
        {ok, Id} -> {ok, Key, Id};
        error ->
            case [{K, Id} || {K = {R, _}, Id} <- maps:to_list(By), R =:= Key] of
                [{K, Id}] -> {ok, K, Id};
                [] -> error
            end
    end.

step(Key, Event, State = #{jobs := Jobs}) ->
    case job_key(Key, State) of
        {ok, _K, Id} ->
            Job = #{kind := Kind, steps := Steps} = maps:get(Id, Jobs),
            case step_doc(Kind, Event) of
                none -> State;
                Doc -> State#{jobs => Jobs#{Id => Job#{steps => add_step(Doc, Steps)}}}
            end;
        error ->
            State
    end.

%% Newest first while running; a progress replaces the previous progress of its step.
add_step(Doc = #{<<"event">> := progress, <<"step">> := S}, [#{<<"event">> := progress, <<"step">> := S} | Rest]) ->
    [Doc | Rest];
add_step(Doc, Steps) when length(Steps) < ?MAX_STEPS ->
    [Doc | Steps];
add_step(_Doc, Steps) ->
    Steps.

%% A step's document, its line the command's (a restore's words are its command's); `none' for
%% a step the command does not print.
step_doc(Kind, Event = {Phase, Step, _}) when is_atom(Phase) ->
    Line =
        case Kind of
            restore -> emqx_guard_restore_cli:step_line(Event);
            _ -> emqx_guard_steps_cli:line(Event)
        end,
    case Line of
        none -> none;
        _ -> #{<<"at_ms">> => os:system_time(millisecond), <<"event">> => Phase, <<"step">> => Step, <<"line">> => Line}
    end;
step_doc(_Kind, Event) ->
    #{<<"at_ms">> => os:system_time(millisecond), <<"event">> => line, <<"step">> => null,
      <<"line">> => text("~0tP", [emqx_guard_redact:term(Event), 12])}.

finish(Key, Result, State = #{jobs := Jobs, by := By}) ->
    case job_key(Key, State) of
        {ok, K, Id} ->
            case K of
                {_, MRef} -> demonitor(MRef, [flush]);
                _ -> ok
            end,
            Job = maps:get(Id, Jobs),
            {JobState, Out, Error} = outcome(maps:get(kind, Job), Result),
            ?LOG_INFO(#{msg => emqx_guard_api_job_ended, id => Id, state => JobState}),
            State#{jobs => Jobs#{Id => Job#{state => JobState, result => Out, error => Error,
                                            ended_at => os:system_time(millisecond)}},
                   by => maps:remove(K, By)};
        error ->
            State
    end.

%% A job's end as its state, its result document and its error line.
outcome(_Kind, {died, Why}) ->
    {failed, null, text("the job stopped before its end: ~0tP", [emqx_guard_redact:term(Why), 12])};
outcome(backup, {ok, Run}) ->
    {ok, emqx_guard_report:outcome(Run), null};
outcome(backup, {failed, Run}) ->
    {failed, emqx_guard_report:outcome(Run), maps:get(error, Run, null)};
outcome(backup, {refused, Why}) ->
    %% refused after it started: skipped (in a cluster, another node exports it)
    {skipped, null, emqx_guard_outcome:format_error(Why)};
outcome(verify, {ok, Results}) ->
    Docs = [#{<<"name">> => N, <<"verified">> => R =:= ok, <<"error">> => verdict_error(R)} || {N, R} <- Results],
    {case lists:all(fun({_, R}) -> R =:= ok end, Results) of true -> ok; false -> failed end, #{<<"results">> => Docs}, null};
outcome(restore, {ok, Report}) ->
    {ok, restore_doc(Report), null};
outcome(restore, {error, Why = {_, #{report := Report}}}) ->
    %% a step after the preflight failed: what was done, and why it stopped
    {failed, restore_doc(Report), emqx_guard_outcome:format_error(Why)};
outcome(notify_test, Results) when is_list(Results) ->
    Docs = [#{<<"channel">> => K, <<"ok">> => element(1, R) =:= ok, <<"answer">> => answer(R), <<"error">> => verdict_error(R)}
            || {K, R} <- Results],
    {case lists:all(fun({_, R}) -> element(1, R) =:= ok end, Results) of true -> ok; false -> failed end, #{<<"results">> => Docs}, null};
outcome(_Kind, {error, Why}) ->
    {failed, null, emqx_guard_outcome:format_error(Why)}.

%% A restore's report, with `facts': what the preflight found as the command prints it.
restore_doc(Report) when is_map(Report) ->
    (emqx_guard_api:json_safe(Report))#{<<"facts">> => emqx_guard_restore_cli:facts_lines(Report)};
restore_doc(Report) ->
    emqx_guard_api:json_safe(Report).

verdict_error({error, Why}) -> emqx_guard_outcome:format_error(Why);
verdict_error(_) -> null.

answer({ok, Answer}) -> Answer;
answer(_) -> null.

doc(Job = #{id := Id, kind := Kind, target := Target, started_at := Started, ended_at := Ended, steps := Steps}) ->
    Zone = maps:get(backup_timezone, emqx_guard_settings:get()),
    lists:foldl(fun maps:merge/2, #{
        <<"id">> => Id,
        <<"kind">> => Kind,
        <<"trigger">> => maps:get(trigger, Job),
        <<"target">> => Target,
        <<"dry_run">> => maps:get(dry_run, maps:get(args, Job), null),
        <<"state">> => maps:get(state, Job),
        <<"duration_ms">> => case Ended of undefined -> os:system_time(millisecond) - Started; _ -> Ended - Started end,
        <<"steps">> => lists:reverse(Steps),
        <<"result">> => maps:get(result, Job),
        <<"error">> => maps:get(error, Job)
    }, [emqx_guard_report:instant(<<"started_at">>, Started, Zone), emqx_guard_report:instant(<<"ended_at">>, Ended, Zone)]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
