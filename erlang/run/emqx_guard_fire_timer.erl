%% @doc The scheduler's one timer (`emqx_guard_scheduler'): armed for the next fire instant on the
%% scheduler's clock (`emqx_guard_clock'), it sends `{Tag, wake, Token}' to the process that set
%% it.
%% <ul>
%% <li>A wait longer than `erlang:send_after/3' allows (or than `max_wait_ms') is chained: the
%%     timer wakes at most that much later and is set again for the same target.</li>
%% <li>On every wake the clock is read again; a wake before the target (the clock was set back,
%%     or a chained wait) re-arms for the same target (`woke/2': `early').</li>
%% <li>A wake whose token is not the timer's own is stale: a timer that was replaced or cleared
%%     since (`woke/2': `stale').</li>
%% </ul>
-module(emqx_guard_fire_timer).

-export([new/3, set/2, clear/1, target/1, woke/2]).

-export_type([timer/0]).

%% The longest delay erlang:send_after/3 accepts.
-define(MAX_SEND_AFTER_MS, 16#FFFFFFFF).

-opaque timer() :: #{
    clock := emqx_guard_clock:clock(),
    tag := atom(),
    max_wait_ms := pos_integer(),
    %% the armed timer and the token its message carries
    armed := undefined | {term(), reference()},
    target := undefined | integer()
}.

%% @doc A timer on Clock that is not armed; its messages are tagged Tag; no single wait is longer
%% than MaxWaitMs.
-spec new(emqx_guard_clock:clock(), atom(), pos_integer()) -> timer().
new(Clock, Tag, MaxWaitMs) ->
    #{clock => Clock, tag => Tag, max_wait_ms => min(MaxWaitMs, ?MAX_SEND_AFTER_MS), armed => undefined, target => undefined}.

%% @doc Cancels what the timer waited for and arms it for Target (Unix ms).
-spec set(integer(), timer()) -> timer().
set(Target, Timer) ->
    wait(Target, clear(Timer)).

%% @doc Cancels the timer: it waits for nothing.
-spec clear(timer()) -> timer().
clear(Timer = #{armed := undefined}) ->
    Timer#{target := undefined};
clear(Timer = #{armed := {TRef, _Token}, clock := Clock}) ->
    emqx_guard_clock:cancel(Clock, TRef),
    Timer#{armed := undefined, target := undefined}.

%% @doc The instant the timer waits for, or `undefined'.
-spec target(timer()) -> integer() | undefined.
target(#{target := Target}) ->
    Target.

%% @doc The timer's message with Token arrived: `{due, Target, Timer}' when the clock has reached
%% the target (the timer now waits for nothing), `{early, Timer}' when not (armed again for the
%% same target), `stale' for a message of a timer replaced or cleared since.
-spec woke(reference(), timer()) -> {due, integer(), timer()} | {early, timer()} | stale.
woke(Token, Timer = #{armed := {_TRef, Token}, target := Target, clock := Clock}) ->
    case emqx_guard_clock:now(Clock) < Target of
        true -> {early, wait(Target, Timer)};
        false -> {due, Target, Timer#{armed := undefined, target := undefined}}
    end;
woke(_Token, _Timer) ->
    stale.

wait(Target, Timer = #{clock := Clock, tag := Tag, max_wait_ms := MaxWaitMs}) ->
    Delay = min(max(Target - emqx_guard_clock:now(Clock), 0), MaxWaitMs),
    Token = make_ref(),
    TRef = emqx_guard_clock:send_after(Clock, Delay, {Tag, wake, Token}),
    Timer#{armed := {TRef, Token}, target := Target}.
