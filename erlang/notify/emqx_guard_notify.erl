%% @doc The notification server: takes events, sends each on every channel that wants it, one
%% sender per channel, with retries; holds the dead-man watch.
%%
%% A gen_server under the plugin's supervisor. Callers only cast to it (`notify/2',
%% `run_finished/1'), so a slow or dead server never blocks or delays a backup. Each delivery
%% runs in its own monitored process with the facts gathered for it (`emqx_guard_notify_facts'):
%% attempts, waits and retries are `emqx_guard_notify_sender''s. Every network step of an attempt
%% is bounded by `timeout_ms', a whole SMTP session by `deadline_ms'. The outcome is kept for
%% `guard backup_status' and `guard notify' (`status/0').
%%
%% At most one delivery is in flight per channel, so a stalling server holds at most one dirty
%% IO scheduler or connection however many events come. Events that arrive meanwhile wait in
%% a per-channel queue of at most six: the newest alert (`backup_failed' or `dead_man'), the
%% newest `backup_ok', the newest `offsite_failed' and the newest `offsite_ok' (the off-site
%% copies' own events, `emqx_guard_offsite_queue'), the newest `restore_failed' and
%% `restore_done' (`emqx_guard_restore'). A newer event replaces a waiting one of its
%% own kind only (logged as `emqx_guard_notify_superseded'), so a failure notice is never lost in
%% favour of a success notice, nor a backup's in favour of an off-site copy's. The waiting ones
%% go out in the order they arrived, each with the settings of its start.
%%
%% The dead-man watch (`emqx_guard_dead_man') is checked every `check_interval_ms' and at its
%% deadline; one node of the cluster sends its warning.
%%
%% Options (a map in the `notify' application environment of `emqx_guard', or the argument of
%% `start_link/1'): `backoff_ms' ([5000, 30000, 120000]), `timeout_ms' (30000), `deadline_ms'
%% (120000), `dead_man_grace_ms' (undefined: export timeout + 60 s), `check_interval_ms'
%% (3600000), `settings' (a fun returning the settings map; default `emqx_guard_settings:get/0'),
%% `state_file' (default: the store's `notify_state'), `slack_api_url' (Slack's
%% chat.postMessage endpoint).
-module(emqx_guard_notify).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([
    start_link/0,
    start_link/1,
    notify/2,
    run_finished/1,
    backup_seen/1,
    dead_man_warned/1,
    send_test/0,
    send_test/1,
    status/0,
    check_dead_man/0
]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

-define(SERVER, ?MODULE).
-define(DEFAULTS, #{
    backoff_ms => [5000, 30000, 120000],
    timeout_ms => 30000,
    deadline_ms => 120000,
    dead_man_grace_ms => undefined,
    check_interval_ms => 3600000,
    settings => fun emqx_guard_settings:get/0,
    state_file => undefined
}).

-type delivery() :: #{
    event := emqx_guard_notify_format:event(),
    state := sending | retrying | sent | failed,
    attempts := pos_integer(),
    at := integer(),
    answer => binary(),
    error => binary()
}.
-type queued() :: [{emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()}].
%% Why a test message was not sent (`emqx_guard_outcome:format_error/1' says it).
-type test_error() :: {not_configured, emqx_guard_channel:kind()} | {delivery_failed, binary()}.
-export_type([delivery/0, test_error/0]).

-record(st, {
    opts :: map(),
    workers = #{} :: #{pid() => {emqx_guard_channel:kind(), reference()}},
    queued = #{} :: #{emqx_guard_channel:kind() => queued()},
    last = #{} :: #{emqx_guard_channel:kind() => delivery()},
    watch :: emqx_guard_dead_man:watch(),
    timer = undefined :: undefined | {reference(), reference()}
}).

%%--------------------------------------------------------------------------------------------
%% API
%%--------------------------------------------------------------------------------------------

%% @doc Starts the server with the options of the `notify' application environment.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    start_link(application:get_env(emqx_guard, notify, #{})).

%% @doc Starts the server, registered as `emqx_guard_notify'.
-spec start_link(map()) -> gen_server:start_ret().
start_link(Opts) when is_map(Opts) ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, Opts, []).

%% @doc Sends Event with Facts on every configured channel. Never blocks and never fails:
%% without the server the event is only logged.
-spec notify(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> ok.
notify(Event, Facts) when is_map(Facts) ->
    case whereis(?SERVER) of
        undefined ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_not_running, event => Event}),
            ok;
        Pid ->
            gen_server:cast(Pid, {notify, Event, Facts})
    end.

%% @doc Tells about a finished backup run: `backup_ok' or `backup_failed' with the outcome as
%% facts; a skipped run sends nothing (`emqx_guard_notify_facts:event_of/1'). Never blocks.
-spec run_finished(map()) -> ok.
run_finished(Outcome) when is_map(Outcome) ->
    case emqx_guard_notify_facts:event_of(Outcome) of
        none -> ok;
        Event -> notify(Event, Outcome)
    end.

%% @doc `send_test(all)'.
-spec send_test() -> [{emqx_guard_channel:kind(), {ok, binary()} | {error, test_error()}}].
send_test() ->
    send_test(all).

%% @doc Sends a test message now on one configured channel or on all of them, once (no
%% retries), in the calling process, and returns what each service answered, or
%% `{error, {delivery_failed, Line}}' with the channel's line. A channel asked for by name that
%% is not configured gives `{error, {not_configured, Kind}}'.
-spec send_test(emqx_guard_channel:kind() | all) -> [{emqx_guard_channel:kind(), {ok, binary()} | {error, test_error()}}].
send_test(Which) ->
    Opts =
        try
            gen_server:call(?SERVER, opts, 5000)
        catch
            exit:_ -> opts(application:get_env(emqx_guard, notify, #{}))
        end,
    Settings = current_settings(maps:get(settings, Opts)),
    Facts = emqx_guard_notify_facts:enrich(#{}, Settings),
    Enabled = emqx_guard_channel:enabled(Settings),
    Results = [
        case lists:member(K, Enabled) of
            true -> {K, simple((emqx_guard_channel:module(K)):deliver(test, Facts, Settings, Opts))};
            false -> {K, {error, {not_configured, K}}}
        end
     || K <- case Which of
            all -> Enabled;
            _ -> [Which]
        end
    ],
    _ = [gen_server:cast(?SERVER, {tested, K, R}) || {K, R} <- Results, lists:member(K, Enabled)],
    [{K, test_result(R)} || {K, R} <- Results].

%% @doc The last delivery on each channel, the waiting events and the dead-man watch.
-spec status() -> #{atom() => term()}.
status() ->
    try
        gen_server:call(?SERVER, status, 5000)
    catch
        exit:_ ->
            maps:merge(
                maps:from_list([{K, undefined} || K <- emqx_guard_channel:kinds()]),
                #{enabled => [], queued => #{}, last_success => undefined, dead_man_deadline => undefined}
            )
    end.

%% @doc Tells the dead-man watch that a backup made elsewhere in the cluster succeeded at
%% `AtMs' (a verified copy of it arrived here). Sends nothing.
-spec backup_seen(integer()) -> ok.
backup_seen(AtMs) when is_integer(AtMs) ->
    gen_server:cast(?SERVER, {backup_seen, AtMs}).

%% @doc Tells the dead-man watch that another node sent the warning for the silence since
%% `LastSuccess' (`emqx_guard_election:announce_warned/1'). Sends nothing.
-spec dead_man_warned(integer()) -> ok.
dead_man_warned(LastSuccess) when is_integer(LastSuccess) ->
    gen_server:cast(?SERVER, {dead_man_warned, LastSuccess}).

%% @doc Runs the dead-man check now (normally timer driven). Returns when it is done.
-spec check_dead_man() -> ok.
check_dead_man() ->
    gen_server:call(?SERVER, check_dead_man, 15000).

%%--------------------------------------------------------------------------------------------
%% gen_server
%%--------------------------------------------------------------------------------------------

%% @private
init(Opts0) ->
    process_flag(trap_exit, true),
    Opts = opts(Opts0),
    ok = emqx_guard_http:start(),
    {ok, arm(#st{opts = Opts, watch = emqx_guard_dead_man:load(Opts)})}.

%% @private
handle_call(status, _From, St) ->
    Settings = settings(St),
    Deliveries = maps:from_list([{K, maps:get(K, St#st.last, undefined)} || K <- emqx_guard_channel:kinds()]),
    {reply,
        Deliveries#{
            enabled => emqx_guard_channel:enabled(Settings),
            queued => maps:map(fun(_K, Q) -> [E || {E, _} <- Q] end, St#st.queued),
            last_success => emqx_guard_dead_man:last_success(St#st.watch),
            dead_man_deadline => emqx_guard_dead_man:deadline(St#st.watch)
        },
        St};
handle_call(opts, _From, St) ->
    {reply, St#st.opts, St};
handle_call(check_dead_man, _From, St) ->
    {reply, ok, arm(dead_man_check(St))};
handle_call(Request, _From, St) ->
    {reply, {error, {unknown_call, Request}}, St}.

%% @private
handle_cast({notify, backup_ok, Facts}, St) ->
    At = maps:get(started_at, Facts, maps:get(time, Facts, now_ms())),
    {noreply, dispatch(backup_ok, Facts, arm(St#st{watch = emqx_guard_dead_man:succeeded(At, St#st.watch)}))};
handle_cast({notify, Event, Facts}, St) ->
    {noreply, dispatch(Event, Facts, St)};
handle_cast({backup_seen, At}, St) ->
    {noreply, arm(St#st{watch = emqx_guard_dead_man:seen(At, St#st.watch)})};
handle_cast({dead_man_warned, LastSuccess}, St) ->
    {noreply, arm(St#st{watch = emqx_guard_dead_man:warned_elsewhere(LastSuccess, St#st.watch)})};
handle_cast({tested, Kind, Result}, St) ->
    D = finished(#{event => test, attempts => 1, at => now_ms()}, Result),
    {noreply, St#st{last = (St#st.last)#{Kind => D}}};
handle_cast(_Other, St) ->
    {noreply, St}.

%% @private
handle_info({attempt, Pid, Attempt, Result}, St) ->
    case maps:find(Pid, St#st.workers) of
        {ok, {Kind, _Mon}} ->
            ok = count(Kind, Result),
            Prev = maps:get(Kind, St#st.last),
            D = finished(Prev#{attempts => Attempt, at => now_ms()}, Result),
            {noreply, St#st{last = (St#st.last)#{Kind => D}}};
        error ->
            {noreply, St}
    end;
handle_info({'DOWN', Mon, process, Pid, Why}, St) ->
    case maps:take(Pid, St#st.workers) of
        {{Kind, Mon}, Workers} ->
            D0 = maps:get(Kind, St#st.last),
            D =
                case Why of
                    normal ->
                        D0;
                    _ ->
                        %% the sender held the channel's settings: its crash may quote them
                        ?LOG_ERROR(#{msg => emqx_guard_notify_crashed, channel => Kind,
                            reason => emqx_guard_redact:term(Why, [settings(St)])}),
                        D0#{state => failed, error => <<"the sender crashed">>}
                end,
            {noreply, next_queued(Kind, St#st{workers = Workers, last = (St#st.last)#{Kind => D}})};
        error ->
            {noreply, St}
    end;
handle_info({check_dead_man, Ref}, #st{timer = {_, Ref}} = St) ->
    {noreply, arm(dead_man_check(St#st{timer = undefined}))};
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% Status and crash reports show any settings in the state or the last message redacted.
-spec format_status(gen_server:format_status()) -> gen_server:format_status().
format_status(Status) ->
    emqx_guard_redact:status(Status).

%% @private
terminate(_Reason, St) ->
    [exit(Pid, kill) || Pid <- maps:keys(St#st.workers)],
    emqx_guard_http:stop().

%%--------------------------------------------------------------------------------------------
%% Deliveries
%%--------------------------------------------------------------------------------------------

dispatch(Event, Facts, St) ->
    Settings = settings(St),
    case emqx_guard_notify_config:wants(Event, Settings) of
        false ->
            St;
        true ->
            lists:foldl(
                fun(Kind, Acc) -> dispatch(Kind, Event, Facts, Settings, Acc) end,
                St,
                emqx_guard_channel:enabled(Settings)
            )
    end.

%% Starts the delivery now when the channel is idle, else queues it (see the module doc).
dispatch(Kind, Event, Facts, Settings, St) ->
    case lists:keymember(Kind, 1, maps:values(St#st.workers)) of
        false ->
            start_worker(Kind, Event, Facts, Settings, St);
        true ->
            Queue0 = maps:get(Kind, St#st.queued, []),
            {Superseded, Kept} = lists:partition(fun({E, _}) -> class(E) =:= class(Event) end, Queue0),
            _ = [
                ?LOG_INFO(#{msg => emqx_guard_notify_superseded, channel => Kind, event => Old, by => Event})
             || {Old, _} <- Superseded
            ],
            St#st{queued = (St#st.queued)#{Kind => Kept ++ [{Event, Facts}]}}
    end.

class(backup_ok) -> ok;
class(offsite_failed) -> offsite_failed;
class(offsite_ok) -> offsite_ok;
class(restore_done) -> restore_done;
class(restore_failed) -> restore_failed;
class(_) -> alert.

%% The channel's delivery finished: starts the oldest waiting event, with the current settings
%% (dropped when the channel is no longer configured or no longer wants it).
next_queued(Kind, St) ->
    case maps:get(Kind, St#st.queued, []) of
        [] ->
            St;
        [{Event, Facts} | Rest] ->
            St1 = St#st{queued = (St#st.queued)#{Kind => Rest}},
            Settings = settings(St1),
            case
                lists:member(Kind, emqx_guard_channel:enabled(Settings)) andalso
                    emqx_guard_notify_config:wants(Event, Settings)
            of
                true -> start_worker(Kind, Event, Facts, Settings, St1);
                false -> next_queued(Kind, St1)
            end
    end.

start_worker(Kind, Event, Facts, Settings, St) ->
    Server = self(),
    Opts = St#st.opts,
    {Pid, Mon} = spawn_monitor(fun() ->
        emqx_guard_notify_sender:deliver(Server, Kind, Event, emqx_guard_notify_facts:enrich(Facts, Settings), Settings, Opts)
    end),
    D = #{event => Event, state => sending, attempts => 1, at => now_ms()},
    St#st{workers = (St#st.workers)#{Pid => {Kind, Mon}}, last = (St#st.last)#{Kind => D}}.

finished(D, {ok, Answer}) ->
    maps:remove(error, D#{state => sent, answer => Answer});
finished(D, {retrying, Why}) ->
    D#{state => retrying, error => Why};
finished(D, {_, Why}) ->
    D#{state => failed, error => Why}.

%% A delivery's end, counted for the metrics (`emqx_guard_counters'): sent, or given up.
count(Kind, {ok, _}) -> emqx_guard_counters:bump({notify_delivery, Kind, ok});
count(Kind, {error, _}) -> emqx_guard_counters:bump({notify_delivery, Kind, failed});
count(_Kind, _Retrying) -> ok.

simple({ok, A}) -> {ok, A};
simple(R) -> {error, element(2, R)}.

test_result({error, Line}) when is_binary(Line) -> {error, {delivery_failed, Line}};
test_result(R) -> R.

%%--------------------------------------------------------------------------------------------
%% Dead-man watch
%%--------------------------------------------------------------------------------------------

dead_man_check(St) ->
    case emqx_guard_dead_man:check(settings(St), now_ms(), St#st.watch) of
        {quiet, W} -> St#st{watch = W};
        {warn, Facts, W} ->
            ok = emqx_guard_events:dead_man(Facts),
            dispatch(dead_man, Facts, St#st{watch = W})
    end.

arm(St) ->
    _ =
        case St#st.timer of
            {Old, _} -> erlang:cancel_timer(Old);
            undefined -> ok
        end,
    {Wait, W} = emqx_guard_dead_man:arm(settings(St), maps:get(check_interval_ms, St#st.opts), St#st.watch),
    Ref = make_ref(),
    TRef = erlang:send_after(Wait, self(), {check_dead_man, Ref}),
    St#st{watch = W, timer = {TRef, Ref}}.

%%--------------------------------------------------------------------------------------------

opts(Given) ->
    maps:merge(?DEFAULTS, Given).

settings(#st{opts = #{settings := Fun}}) ->
    current_settings(Fun).

current_settings(Fun) ->
    try Fun() of
        S when is_map(S) -> S;
        _ -> #{}
    catch
        C:E ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_settings_unreadable, reason => {C, E}}),
            #{}
    end.

now_ms() ->
    erlang:system_time(millisecond).
