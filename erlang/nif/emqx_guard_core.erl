%% @doc The Rust core as the rest of the plugin calls it: `emqx_guard_nif' with every failure
%% kept as a tagged term, never an exception.
%%
%% Each function has the signature of its `emqx_guard_nif' namesake (paths may also be strings
%% here) and returns what the NIF returns, `{ok, Value}' or `{error, {Reason, Detail}}' with the
%% NIF's stable reason atom and its one-line Detail: the contract is `emqx_guard_nif''s, stated
%% there only. What the NIF raises becomes an error of the same shape:
%% <ul>
%% <li>`nif_not_loaded': the library could not be loaded (Detail says which file and why);</li>
%% <li>`nif_panicked': a Rust panic;</li>
%% <li>`badarg': an argument the NIF refuses (e.g. an instant out of range from a damaged file);</li>
%% <li>`nif_failed': anything else.</li>
%% </ul>
%% Callers match on the reason atoms; the Detail is the text a person reads.
-module(emqx_guard_core).

-include_lib("kernel/include/logger.hrl").

-export([
    validate/1,
    next_fires/4,
    describe/1,
    resolve_zone/1,
    utc_offset/2,
    list_backups/1,
    send_mail/3,
    is_export_name/1,
    retention_policy/1,
    disk_space/1,
    usable/0
]).

%% Background jobs (see `emqx_guard_nif''s module doc) and waiting for them.
-export([
    verify_async/2,
    prune_async/6,
    list_verified_async/3,
    cancel_all/0,
    await/2,
    await/3,
    await_progress/4,
    offsite_upload_async/3,
    offsite_list_async/2,
    offsite_prune_async/4,
    offsite_fetch_async/5
]).

-type error() :: {error, {Reason :: atom(), Detail :: binary()}}.
%% How often `await/3' tells that a job still runs.
-define(TICK_MS, 1000).
-export_type([error/0]).

%% @doc `emqx_guard_nif:validate/1'.
-spec validate(binary()) -> {ok, binary()} | error().
validate(Expr) -> guarded(fun() -> emqx_guard_nif:validate(Expr) end).

%% @doc `emqx_guard_nif:next_fires/4'.
-spec next_fires(binary(), binary(), integer(), integer()) -> {ok, [integer()]} | error().
next_fires(Expr, Zone, After, N) -> guarded(fun() -> emqx_guard_nif:next_fires(Expr, Zone, After, N) end).

%% @doc `emqx_guard_nif:describe/1'.
-spec describe(binary()) -> {ok, binary()} | error().
describe(Expr) -> guarded(fun() -> emqx_guard_nif:describe(Expr) end).

%% @doc `emqx_guard_nif:resolve_zone/1'.
-spec resolve_zone(binary()) -> {ok, binary()} | error().
resolve_zone(Zone) -> guarded(fun() -> emqx_guard_nif:resolve_zone(Zone) end).

%% @doc `emqx_guard_nif:utc_offset/2'.
-spec utc_offset(binary(), integer()) -> {ok, integer()} | error().
utc_offset(Zone, Ms) -> guarded(fun() -> emqx_guard_nif:utc_offset(Zone, Ms) end).

%% @doc `emqx_guard_nif:list_backups/1'.
-spec list_backups(file:filename_all()) -> {ok, [emqx_guard_nif:backup()]} | error().
list_backups(Dir) -> guarded(fun() -> emqx_guard_nif:list_backups(bin(Dir)) end).

%% @doc `emqx_guard_nif:send_mail/3'.
-spec send_mail(map(), binary(), binary()) -> {ok, binary()} | error().
send_mail(Config, Subject, Body) -> guarded(fun() -> emqx_guard_nif:send_mail(Config, Subject, Body) end).

%% @doc `emqx_guard_nif:verify_async/2': `{ok, Job}', then a message for `await/2'.
-spec verify_async(file:filename_all(), emqx_guard_nif:opts()) -> {ok, emqx_guard_nif:job()} | error().
verify_async(Path, Opts) -> guarded(fun() -> emqx_guard_nif:verify_async(bin(Path), Opts) end).

%% @doc `emqx_guard_nif:prune_async/6'.
-spec prune_async(file:filename_all(), emqx_guard_nif:rules() | integer(), file:filename_all() | undefined, boolean(),
                  [emqx_guard_nif:record()], emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
prune_async(Dir, Keep, Protect, DryRun, Records, Opts) ->
    guarded(fun() -> emqx_guard_nif:prune_async(bin(Dir), Keep, bin(Protect), DryRun, Records, Opts) end).

%% @doc `emqx_guard_nif:list_verified_async/3'.
-spec list_verified_async(file:filename_all(), [emqx_guard_nif:record()], emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
list_verified_async(Dir, Records, Opts) ->
    guarded(fun() -> emqx_guard_nif:list_verified_async(bin(Dir), Records, Opts) end).

%% `emqx_guard_nif:cancel/1': `ok' (also for a finished job).
-spec cancel(emqx_guard_nif:job()) -> ok | error().
cancel(Job) ->
    case guarded(fun() -> {ok, emqx_guard_nif:cancel(Job)} end) of
        {ok, ok} -> ok;
        {ok, Other} -> {error, {nif_failed, text("unexpected answer from cancel: ~0tP", [Other, 5])}};
        {error, _} = Error -> Error
    end.

%% @doc `emqx_guard_nif:cancel_all/0': how many jobs were cancelled.
-spec cancel_all() -> {ok, non_neg_integer()} | error().
cancel_all() -> guarded(fun() -> {ok, emqx_guard_nif:cancel_all()} end).

%% @doc Waits up to TimeoutMs for the result of a job the calling process started: its
%% `{ok, _}' or `{error, {Reason, Detail}}' as the NIF sends it. A job still running then is
%% cancelled and its (cancelled) message taken, so none is left behind; the result is then
%% `{error, {timeout, Detail}}'.
-spec await(emqx_guard_nif:job(), timeout()) -> {ok, term()} | error().
await(Job, TimeoutMs) ->
    receive
        {emqx_guard_job, Job, Result} -> job_result(Result)
    after TimeoutMs ->
        _ = cancel(Job),
        receive
            {emqx_guard_job, Job, _} -> ok
        after 5000 ->
            %% the job did not stop at its next read: leave its message to the mailbox
            ?LOG_WARNING(#{msg => emqx_guard_job_not_stopped, timeout_ms => TimeoutMs})
        end,
        {error, {timeout, text("no result within ~ts", [emqx_guard_render:duration_ms(TimeoutMs)])}}
    end.

%% @doc `await/2', calling OnTick(ElapsedMs) in the caller's process each second the job is still
%% running (at most once a second, never after the result came): how a command shows that a
%% long read goes on.
-spec await(emqx_guard_nif:job(), timeout(), fun((non_neg_integer()) -> term())) -> {ok, term()} | error().
await(Job, TimeoutMs, OnTick) ->
    {T0, Deadline} = emqx_guard_clock:deadline(TimeoutMs),
    ticking(Job, T0, Deadline, T0 + ?TICK_MS, OnTick).

ticking(Job, T0, Deadline, Tick, OnTick) ->
    Now = erlang:monotonic_time(millisecond),
    case Deadline =/= infinity andalso Deadline =< Tick of
        true ->
            %% no tick before the deadline: the rest is await/2's
            await(Job, max(Deadline - Now, 0));
        false ->
            receive
                {emqx_guard_job, Job, Result} -> job_result(Result)
            after max(Tick - Now, 0) ->
                At = erlang:monotonic_time(millisecond),
                _ = (try OnTick(At - T0) catch _:_ -> ok end),
                ticking(Job, T0, Deadline, At + ?TICK_MS, OnTick)
            end
    end.

%% @doc `await/2' for a job that reports progress (`prune_async/6'): each
%% `{emqx_guard_job_progress, Job, Progress}' that comes before the result is handed to
%% OnProgress(Progress, Acc), which returns the next Acc, as soon as it arrives. Deadline(Acc)
%% is the monotonic time (ms) by which the result must have come, asked again after each report.
%% When it has passed, the job is cancelled and the reports it sends until it stops are still
%% handed over; the result is then `{error, {timeout, Detail}}', unless the job finished
%% meanwhile. Returns `{Result, Acc}'.
-spec await_progress(emqx_guard_nif:job(), fun((Acc) -> integer()), fun((term(), Acc) -> Acc), Acc) ->
    {{ok, term()} | error(), Acc}.
await_progress(Job, Deadline, OnProgress, Acc) ->
    Wait = max(0, Deadline(Acc) - erlang:monotonic_time(millisecond)),
    receive
        {emqx_guard_job_progress, Job, Progress} ->
            await_progress(Job, Deadline, OnProgress, OnProgress(Progress, Acc));
        {emqx_guard_job, Job, Result} ->
            {job_result(Result), Acc}
    after Wait ->
        _ = cancel(Job),
        stopping(Job, OnProgress, Acc)
    end.

%% The reports of a cancelled job until its last message (it stops at its next read).
stopping(Job, OnProgress, Acc) ->
    receive
        {emqx_guard_job_progress, Job, Progress} ->
            stopping(Job, OnProgress, OnProgress(Progress, Acc));
        {emqx_guard_job, Job, {ok, _} = Done} ->
            %% it finished just before the cancel
            {Done, Acc};
        {emqx_guard_job, Job, _Cancelled} ->
            {{error, {timeout, <<"no result in time">>}}, Acc}
    after 5000 ->
        %% the job did not stop at its next read: leave its messages to the mailbox
        ?LOG_WARNING(#{msg => emqx_guard_job_not_stopped}),
        {{error, {timeout, <<"no result in time">>}}, Acc}
    end.

job_result({ok, _} = Ok) -> Ok;
job_result({error, {Reason, Detail}} = Error) when is_atom(Reason), is_binary(Detail) -> Error;
job_result(Other) -> {error, {nif_failed, text("unexpected job result: ~0tP", [Other, 10])}}.

%% @doc Whether Name is an EMQX export name (`emqx_guard_nif:is_export_name/1'); `false' when the
%% core cannot answer (then no file is treated as a backup).
-spec is_export_name(file:filename_all()) -> boolean().
is_export_name(Name) ->
    case guarded(fun() -> {ok, emqx_guard_nif:is_export_name(bin(Name))} end) of
        {ok, true} -> true;
        _ -> false
    end.

%% @doc `emqx_guard_nif:retention_policy/1'.
-spec retention_policy(unicode:chardata()) -> {ok, emqx_guard_nif:policy()} | error().
retention_policy(Text) -> guarded(fun() -> emqx_guard_nif:retention_policy(bin(Text)) end).

%% @doc `emqx_guard_nif:disk_space/1'.
-spec disk_space(file:filename_all()) ->
    {ok, #{available := non_neg_integer(), total := non_neg_integer()}} | error().
disk_space(Path) -> guarded(fun() -> emqx_guard_nif:disk_space(bin(Path)) end).

%% @doc Whether the core answers at all (its library is loaded and works).
-spec usable() -> boolean().
usable() ->
    element(1, validate(<<"* * * * *">>)) =:= ok.

%% @doc `emqx_guard_nif:offsite_upload_async/3'.
-spec offsite_upload_async(emqx_guard_nif:offsite_config(), file:filename_all(), emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
offsite_upload_async(Config, Path, Opts) ->
    guarded(fun() -> emqx_guard_nif:offsite_upload_async(Config, bin(Path), Opts) end).

%% @doc `emqx_guard_nif:offsite_list_async/2'.
-spec offsite_list_async(emqx_guard_nif:offsite_config(), emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
offsite_list_async(Config, Opts) ->
    guarded(fun() -> emqx_guard_nif:offsite_list_async(Config, Opts) end).

%% @doc `emqx_guard_nif:offsite_prune_async/4'.
-spec offsite_prune_async(emqx_guard_nif:offsite_config(), emqx_guard_nif:rules() | integer(), boolean(),
                          emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
offsite_prune_async(Config, Keep, DryRun, Opts) ->
    guarded(fun() -> emqx_guard_nif:offsite_prune_async(Config, Keep, DryRun, Opts) end).

%% @doc `emqx_guard_nif:offsite_fetch_async/5'.
-spec offsite_fetch_async(emqx_guard_nif:offsite_config(), binary(), file:filename_all() | undefined,
                          file:filename_all(), emqx_guard_nif:opts()) ->
    {ok, emqx_guard_nif:job()} | error().
offsite_fetch_async(Config, Name, IdentityPath, DestDir, Opts) ->
    guarded(fun() ->
        emqx_guard_nif:offsite_fetch_async(Config, bin(Name), bin(IdentityPath), bin(DestDir), Opts)
    end).

%%--------------------------------------------------------------------------------------------

guarded(Call) ->
    try Call() of
        {ok, _} = Ok ->
            Ok;
        {error, {Reason, Detail}} = Error when is_atom(Reason), is_binary(Detail) ->
            Error;
        Other ->
            {error, {nif_failed, text("unexpected answer from the emqx_guard core: ~0tP", [Other, 10])}}
    catch
        error:{nif_not_loaded, Path, Why} ->
            {error, {nif_not_loaded, text("the emqx_guard core (~ts) is not loaded: ~0tp", [Path, Why])}};
        error:nif_panicked ->
            ?LOG_ERROR(#{msg => emqx_guard_core_panicked}),
            {error, {nif_panicked, <<"the emqx_guard core failed (a panic in the native code)">>}};
        error:badarg ->
            {error, {badarg, <<"the emqx_guard core refused these arguments (a value out of range?)">>}};
        Class:Reason ->
            ?LOG_ERROR(#{msg => emqx_guard_core_call_failed, exception => Class, reason => Reason}),
            {error, {nif_failed, text("the emqx_guard core is not usable: ~0tP", [Reason, 10])}}
    end.

bin(undefined) -> undefined;
bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
