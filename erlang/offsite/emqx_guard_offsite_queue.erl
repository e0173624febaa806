%% @doc The off-site copies of this node, as a queue of their own: the backup run hands a verified
%% backup over (`enqueue/1', a cast: the run, its alarm, its notification and `guard backup_now'
%% never wait on the network) and this server uploads it later, in a job process
%% (`emqx_guard_offsite:job/2').
%%
%% The same shape as `emqx_guard_copies': one job at a time; a backup that arrives while one
%% runs waits, and only the newest waits (an older one superseded is logged, and the next job's
%% fill-in uploads it while it is among the newest `backup_keep'). The settings (destination,
%% `backup_keep', `backup_io_limit') are read when each job starts.
%% <ul>
%% <li>A failed job raises the alarm `emqx_guard_offsite_failed' and sends `offsite_failed' on
%%     every channel that wants it (once per run of failures: `emqx_guard_offsite_alerts'); it is
%%     tried again after the waits of the `offsite_requeue_ms' application environment (default
%%     1 min, 5 min, 15 min, then every hour), or at once when a backup arrives while no job
%%     runs, when a setting changes, or when the settings changed while the failed job ran. The
%%     next job that passes clears the alarm and sends `offsite_ok'.</li>
%% <li>`guard backup_remote off' (any settings change that leaves no destination, also one
%%     adopted from another node): what waits is dropped (logged), the job in flight is ended at
%%     once (its process is killed, so the NIF job is cancelled: a multipart upload is aborted,
%%     no partial object is left) and the alarm is cleared.</li>
%% <li>A core node with no local backup that starts, or gets a new destination, looks at the
%%     bucket first (`emqx_guard_offsite:check/1': nothing is changed; a failure is only logged):
%%     a rebuilt node's `guard backup_status' then says at once that remote retention keeps the
%%     history it finds there.</li>
%% <li>What is still to upload, this node's uploads, the confirmation of remote retention and
%%     the last results persist (`emqx_guard_offsite_state'): a node that starts again resumes
%%     what was still to upload (an object already there with the same SHA-256 and size is not
%%     sent again) and raises the alarm again while the last job failed.</li>
%% </ul>
%% Nothing here touches the scheduler: a fire is never skipped or delayed by an upload.
-module(emqx_guard_offsite_queue).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, enqueue/1, settings_changed/0, confirm_retention/0, status/0, retention_guard/0]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-export_type([status/0]).

-define(SERVER, ?MODULE).
-define(REQUEUE_MS, [60000, 300000, 900000, 3600000]).

-type backup() :: emqx_guard_offsite_state:backup().
%% what a job is for: a backup (and the rest), the rest (fill-in and retention), or a look
-type kind() :: backup | sync | check.
-type status() :: #{
    enabled := boolean(),
    running := undefined | #{kind := kind(), file := undefined | binary(), started_at := integer()},
    waiting := [binary()],
    retry_at := undefined | integer(),
    state := emqx_guard_offsite_state:state()
}.

-record(st, {
    state :: emqx_guard_offsite_state:state(),
    %% the job in flight; `done': the files it uploaded so far
    job = undefined :: undefined | #{pid := pid(), mref := reference(), kind := kind(), backup := undefined | backup(),
                                     started_at := integer(), t0 := integer(), done := [binary()]},
    %% what the next job is for: a backup, a `sync' (fill-in and retention only) or a `check'
    waiting = undefined :: undefined | sync | check | backup(),
    %% the destination last seen (a new one is looked at, see `emqx_guard_offsite:check/1')
    dest = undefined :: undefined | binary(),
    retry = undefined :: undefined | {reference(), reference(), integer()},
    failures = 0 :: non_neg_integer(),
    %% the settings changed while the job ran: after a failure the next job goes at once
    changed = false :: boolean()
}).

%%--------------------------------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------------------------------

%% @doc Starts the server, registered as `emqx_guard_offsite_queue'.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Hands the backup of a good run over to the off-site copies (nothing happens while no
%% remote destination is set). Never blocks, never fails.
-spec enqueue(emqx_guard_outcome:outcome()) -> ok.
enqueue(#{file := File, path := Path}) ->
    gen_server:cast(?SERVER, {enqueue, #{file => File, path => Path}});
enqueue(_Outcome) ->
    ok.

%% @doc The settings changed: without a remote destination what waits is dropped and the job in
%% flight ended; with one, a job that waits for its retry starts now. Never blocks.
-spec settings_changed() -> ok.
settings_changed() ->
    gen_server:cast(?SERVER, settings_changed).

%% @doc The operator's confirmation (`guard backup_remote_prune --confirm'): remote retention
%% applies to every backup at the current destination, whoever uploaded it; a job applies it
%% now. `{ok, Where}' (`s3://bucket/prefix'), or `{error, {no_destination, off}}'.
-spec confirm_retention() -> {ok, binary()} | {error, {no_destination, off}}.
confirm_retention() ->
    gen_server:call(?SERVER, confirm_retention, 15000).

%% @doc What the queue does and did, for `guard backup_status' (`undefined' when it is not
%% running).
-spec status() -> status() | undefined.
status() ->
    try
        gen_server:call(?SERVER, status, 15000)
    catch
        exit:_ -> undefined
    end.

%% @doc What remote retention's guard needs outside a job (`guard backup_prune --dry-run'): the
%% export names this node has in the bucket and whether the operator confirmed retention for
%% the current destination.
-spec retention_guard() -> #{own := [binary()], confirmed := boolean()}.
retention_guard() ->
    try
        gen_server:call(?SERVER, retention_guard, 15000)
    catch
        exit:_ -> #{own => [], confirmed => false}
    end.

%%--------------------------------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    process_flag(trap_exit, true),
    State = emqx_guard_offsite_state:load(now_ms()),
    %% alarms live in memory: raised again while the last job failed
    ok = emqx_guard_offsite_alerts:restore(State),
    {ok, #st{state = State, dest = dest()}, {continue, resume}}.

%% @private
%% What was still to upload when the node stopped: the newest goes first, the job fills in the
%% others.
handle_continue(resume, St = #st{state = #{pending := Pending}}) ->
    case {config(), Pending} of
        {off, _} ->
            {noreply, drop(St)};
        {{ok, _}, []} ->
            {noreply, maybe_check(St)};
        {{ok, _}, _} ->
            ?LOG_INFO(#{msg => emqx_guard_offsite_resumed, files => [F || #{file := F} <- Pending]}),
            {noreply, start_job(lists:last(Pending), St)}
    end.

%% @private
handle_call(status, _From, St) ->
    {reply, build_status(St), St};
handle_call(retention_guard, _From, St = #st{state = State = #{own := Own}}) ->
    Confirmed =
        case config() of
            {ok, Config} -> emqx_guard_offsite:confirmed(Config, State);
            off -> false
        end,
    {reply, #{own => Own, confirmed => Confirmed}, St};
handle_call(confirm_retention, _From, St = #st{state = State}) ->
    case config() of
        off ->
            {reply, {error, {no_destination, off}}, St};
        {ok, Config} ->
            ?LOG_WARNING(#{msg => emqx_guard_offsite_retention_confirmed, destination => emqx_guard_offsite:where(Config)}),
            St1 = persist(St#st{state = State#{confirmed_for := emqx_guard_offsite:destination(Config)}}),
            {reply, {ok, emqx_guard_offsite:where(Config)}, next(sync, St1)}
    end;
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({enqueue, Backup}, St) ->
    case config() of
        off -> {noreply, St};
        {ok, _} -> {noreply, next(Backup, St)}
    end;
handle_cast(settings_changed, St0) ->
    Dest = dest(),
    St = St0#st{dest = Dest},
    case config() of
        off ->
            {noreply, drop(St)};
        {ok, _} when St#st.job =/= undefined ->
            {noreply, St#st{changed = true}};
        {ok, _} when St#st.waiting =/= undefined ->
            %% e.g. a corrected key: the job that waits for its retry goes now
            {noreply, start_job(St#st.waiting, cancel_retry(St))};
        {ok, _} when Dest =/= St0#st.dest ->
            {noreply, maybe_check(St)};
        {ok, _} ->
            {noreply, St}
    end;
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
handle_info({offsite_progress, Pid, {uploaded, Upload = #{file := File}}}, St = #st{job = Job = #{pid := Pid}}) ->
    {noreply, persist(St#st{
        job = Job#{done := [File | maps:get(done, Job)]},
        state = emqx_guard_offsite_state:uploaded(Upload, St#st.state)
    })};
handle_info({offsite_done, Pid, Result}, St = #st{job = Job = #{pid := Pid, mref := MRef}}) ->
    demonitor(MRef, [flush]),
    {noreply, finished(Result, Job, St#st{job = undefined})};
handle_info({'DOWN', MRef, process, _Pid, Reason}, St = #st{job = Job = #{mref := MRef}}) ->
    %% the job process died without a result (it catches what the job raises)
    ?LOG_ERROR(#{msg => emqx_guard_offsite_job_died, reason => emqx_guard_offsite:tag(Reason)}),
    {noreply, finished(emqx_guard_offsite:crashed(exit, Reason), Job, St#st{job = undefined})};
handle_info({retry, Token}, St = #st{retry = {_, Token, _}, job = undefined}) ->
    St1 = St#st{retry = undefined},
    case {St1#st.waiting, config()} of
        {undefined, _} -> {noreply, St1};
        {_, off} -> {noreply, drop(St1)};
        {What, {ok, _}} -> {noreply, start_job(What, St1)}
    end;
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% The job in flight ends with the server (no timer of ours is left either); what it was for
%% stays pending and is resumed at the next start.
terminate(_Reason, St = #st{job = Job}) ->
    _ = persist(cancel_retry(St)),
    [exit(Pid, kill) || #{pid := Pid} <- [Job]],
    ok.

%% @private
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_redact:status(Status).

%%--------------------------------------------------------------------------------------------
%% Jobs
%%--------------------------------------------------------------------------------------------

%% What (a backup or a sync) is to be done: now when no job runs, else it waits (the newest
%% backup wins; a waiting backup also does what a sync does).
next(What, St = #st{job = undefined}) ->
    start_job(merge(St#st.waiting, What), cancel_retry(St));
next(What, St = #st{waiting = Waiting}) ->
    case {Waiting, What} of
        {#{file := Old}, #{file := New}} ->
            ?LOG_INFO(#{msg => emqx_guard_offsite_superseded, file => Old, by => New});
        _ ->
            ok
    end,
    persist(St#st{waiting = merge(Waiting, What)}).

merge(#{} = Waiting, What) when What =:= sync; What =:= check -> Waiting;
merge(sync, check) -> sync;
merge(_Waiting, What) -> What.

%% A core node without a local backup looks at the bucket (a rebuilt node: `emqx_guard_offsite:check/1').
maybe_check(St) ->
    case config() =/= off andalso emqx_guard_backups:names() =:= [] andalso emqx_guard_emqx:node_role() =:= core of
        true -> next(check, St);
        false -> St
    end.

start_job(What, St = #st{state = State}) ->
    case config() of
        off ->
            drop(St);
        {ok, Config} ->
            {Kind, Backup} =
                case What of
                    sync -> {sync, undefined};
                    check -> {check, undefined};
                    B -> {backup, B}
                end,
            Request = emqx_guard_offsite:request(Config, emqx_guard_settings:get(), Backup, State),
            Server = self(),
            {Pid, MRef} = spawn_monitor(fun() -> emqx_guard_offsite:run(Server, Kind, Request) end),
            Job = #{pid => Pid, mref => MRef, kind => Kind, backup => Backup, started_at => now_ms(),
                    t0 => erlang:monotonic_time(millisecond), done => []},
            persist(St#st{job = Job, waiting = undefined, changed = false})
    end.

%% A job ended: its result recorded, the alarm and the notifications follow it, and the next job
%% starts (after a failure: when its retry is due). A look at the bucket changes only what
%% status shows of it.
finished(#{result := checked, own := Own, retention := Retention}, _Job, St = #st{state = State}) ->
    next_waiting(St#st{state = State#{own := Own, retention := Retention}});
finished(#{result := check_failed, error := Error}, _Job, St) ->
    ?LOG_WARNING(#{msg => emqx_guard_offsite_check_failed, error => Error}),
    next_waiting(St);
finished(Result, #{backup := Backup, started_at := Started, t0 := T0, done := Done}, St = #st{state = State0}) ->
    Now = now_ms(),
    State = emqx_guard_offsite_state:job_ended(Result, Started, erlang:monotonic_time(millisecond) - T0, State0),
    case Result of
        #{result := ok} ->
            ok = emqx_guard_offsite_alerts:passed(Result, Backup, maps:get(failing, State)),
            next_waiting(St#st{state = State#{failing := false}, failures = 0});
        #{result := failed, error := Error} ->
            Failed = State#{failing := true, last_error := #{at => Now, error => Error}},
            ok = emqx_guard_offsite_alerts:failed(Error, Backup, maps:get(failing, State)),
            %% tried again: the backup, unless this job uploaded it (then the rest of the job)
            Retried =
                case Backup of
                    #{file := F} -> not lists:member(F, Done);
                    undefined -> false
                end,
            Again =
                case {St#st.waiting, Retried} of
                    %% a newer backup waits: its job fills in this one
                    {#{} = Newer, _} -> Newer;
                    {Waiting, true} -> merge(Waiting, Backup);
                    {Waiting, false} -> merge(Waiting, sync)
                end,
            Failures = St#st.failures + 1,
            St1 = St#st{state = Failed, waiting = Again, failures = Failures},
            case St#st.changed of
                %% it ran with settings that are no longer those in use
                true -> start_job(Again, St1);
                false -> persist(arm_retry(Failures, St1))
            end
    end.

next_waiting(St = #st{waiting = undefined}) -> persist(St);
next_waiting(St = #st{waiting = What}) -> start_job(What, St).

%% No destination any more: what waits is dropped, the job in flight ended, the alarm cleared.
drop(St = #st{job = Job, waiting = Waiting, state = State}) ->
    Dropped = [F || #{file := F} <- [maps:get(backup, J) || J <- [Job], is_map(J)] ++ [Waiting] ++ maps:get(pending, State)],
    _ = end_job(Job),
    case Dropped =/= [] orelse Job =/= undefined orelse maps:get(failing, State) orelse St#st.retry =/= undefined of
        true ->
            ?LOG_WARNING(#{msg => emqx_guard_offsite_dropped, files => lists:usort(Dropped), job_ended => Job =/= undefined,
                           reason => no_remote_destination}),
            ok = emqx_guard_offsite_alerts:turned_off(),
            persist((cancel_retry(St))#st{job = undefined, waiting = undefined, failures = 0, state = State#{failing := false}});
        false ->
            St
    end.

%% The job process killed: the NIF job's resource monitors it, so the upload is cancelled.
end_job(#{pid := Pid, mref := MRef}) ->
    demonitor(MRef, [flush]),
    exit(Pid, kill);
end_job(undefined) ->
    true.

arm_retry(Failures, St0) ->
    St = cancel_retry(St0),
    Waits = application:get_env(emqx_guard, offsite_requeue_ms, ?REQUEUE_MS),
    Wait = lists:nth(min(Failures, length(Waits)), Waits),
    Token = make_ref(),
    TRef = erlang:send_after(Wait, self(), {retry, Token}),
    St#st{retry = {TRef, Token, now_ms() + Wait}}.

cancel_retry(St = #st{retry = undefined}) ->
    St;
cancel_retry(St = #st{retry = {TRef, _, _}}) ->
    _ = erlang:cancel_timer(TRef),
    St#st{retry = undefined}.

%%--------------------------------------------------------------------------------------------

%% The state with `pending' as it now is (the backup in flight unless uploaded, then the one
%% waiting), saved.
persist(St = #st{state = State, job = Job, waiting = Waiting}) ->
    InFlight = [B || #{backup := B = #{file := F}, done := Done} <- [Job], not lists:member(F, Done)],
    St1 = St#st{state = emqx_guard_offsite_state:pending(InFlight ++ [W || W <- [Waiting], is_map(W)], State)},
    case emqx_guard_offsite_state:save(St1#st.state) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_offsite_state_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end,
    St1.

build_status(#st{state = State, job = Job, waiting = Waiting, retry = Retry}) ->
    #{
        enabled => config() =/= off,
        running =>
            case Job of
                undefined -> undefined;
                #{kind := K, backup := B, started_at := S} -> #{kind => K, file => file_of(B), started_at => S}
            end,
        waiting => [F || #{file := F} <- [Waiting]],
        retry_at =>
            case Retry of
                undefined -> undefined;
                {_, _, At} -> At
            end,
        state => State
    }.

config() ->
    emqx_guard_offsite_config:to_nif(emqx_guard_settings:get()).

dest() ->
    case config() of
        {ok, Config} -> emqx_guard_offsite:destination(Config);
        off -> undefined
    end.

file_of(#{file := F}) -> F;
file_of(_) -> undefined.

now_ms() ->
    erlang:system_time(millisecond).
