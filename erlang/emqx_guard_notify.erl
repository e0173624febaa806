%% @doc Backup notifications: the e-mail (SMTP, through the NIF) and the webhook (httpc).
%%
%% A gen_server under the plugin's supervisor. Callers only cast to it (`notify/2',
%% `run_finished/1'), so a slow or dead mail server never blocks or delays a backup. Each
%% delivery runs in its own monitored process: it gathers the facts (kept backups, next fire,
%% zone offsets), sends, and on a retryable failure (connection refused, timeout, 4xx, HTTP
%% 5xx/429) waits and tries again, `backoff_ms' giving the waits (so `length(backoff_ms) + 1'
%% attempts). Every network step of an attempt is bounded by `timeout_ms', a whole SMTP session
%% by `deadline_ms' (the NIF returns by then, freeing its dirty IO scheduler). The outcome is
%% logged (a failure as a warning; the password never, the webhook URL only as scheme, host and
%% port) and kept for `guard backup_status' (`status/0', `status_lines/0').
%%
%% At most one delivery is in flight per channel, so a stalling server holds at most one dirty
%% IO scheduler (file I/O of the backups needs them too) however many events come. Events that
%% arrive meanwhile wait in a per-channel queue of at most two: the newest alert (`backup_failed'
%% or `dead_man') and the newest `backup_ok'. A newer event replaces a waiting one of its own
%% kind only (logged as `emqx_guard_notify_superseded'), so a failure notice is never lost in
%% favour of a success notice, and the operator still learns about the latest of each. The
%% waiting ones go out in the order they arrived, each with the settings of its start.
%%
%% Dead-man warning: the server remembers the last successful backup (persisted next to the
%% settings) and checks, at least hourly and at the computed deadline, whether the second
%% scheduled fire after it has passed (plus a grace of the export timeout and a minute) without
%% a new success. Then it sends one `dead_man' message for that silence; the next success
%% re-arms it. In a cluster only the node that exports scheduled backups (the lowest running
%% core node, see emqx_guard_cluster) warns, and a verified copy received from the exporting
%% node counts as a success (`backup_seen/1'), so a node that never exports itself neither
%% raises false warnings nor misses a silence after it takes over.
%%
%% The webhook uses an httpc profile of its own (`emqx_guard_notify'), started here and stopped
%% when this server stops.
%%
%% Options (a map in the `notify' application environment of `emqx_guard', or the argument of
%% `start_link/1'): `backoff_ms' ([5000, 30000, 120000]), `timeout_ms' (30000), `deadline_ms'
%% (120000),
%% `dead_man_grace_ms' (undefined: export timeout + 60 s), `check_interval_ms' (3600000),
%% `settings' (a fun returning the settings map; default `emqx_guard_settings:load/0'),
%% `state_file' (default `<settings dir>/notify_state').
-module(emqx_guard_notify).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([
    start_link/0,
    start_link/1,
    notify/2,
    run_finished/1,
    backup_seen/1,
    send_test/0,
    status/0,
    status_lines/0,
    check_dead_man/0,
    facts_of_run/1
]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2, format_status/1]).

%% Exported for tests: one delivery attempt, synchronously, in the caller.
-export([deliver/5]).

-define(SERVER, ?MODULE).
-define(PROFILE, emqx_guard_notify).
-define(DEFAULT_BACKOFF, [5000, 30000, 120000]).
-define(DEFAULT_TIMEOUT, 30000).
-define(DEFAULT_DEADLINE, 120000).
-define(DEFAULT_CHECK, 3600000).

-type channel() :: email | webhook.
-type delivery() :: #{
    event := emqx_guard_notify_format:event(),
    state := sending | retrying | sent | failed,
    attempts := pos_integer(),
    at := integer(),
    answer => binary(),
    error => binary()
}.
-export_type([channel/0, delivery/0]).

-record(st, {
    opts :: map(),
    settings :: fun(() -> map()),
    workers = #{} :: #{pid() => {channel(), reference()}},
    %% events waiting for the channel's delivery in flight, oldest first (see the module doc)
    queued = #{} :: #{channel() => [{emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()}]},
    last = #{} :: #{channel() => delivery()},
    last_success :: integer(),
    warned_for = undefined :: undefined | integer(),
    deadline = undefined :: undefined | integer(),
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

%% @doc Sends Event with Facts on every configured channel that wants it. Never blocks and
%% never fails: without the server the event is only logged.
-spec notify(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> ok.
notify(Event, Facts) when is_map(Facts) ->
    case whereis(?SERVER) of
        undefined ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_not_running, event => Event}),
            ok;
        Pid ->
            gen_server:cast(Pid, {notify, Event, Facts})
    end.

%% @doc Tells about a finished backup run (a scheduler run record): `backup_ok' or
%% `backup_failed'. Never blocks.
-spec run_finished(map()) -> ok.
run_finished(Run) when is_map(Run) ->
    {Event, Facts} = facts_of_run(Run),
    notify(Event, Facts).

%% @doc The event and facts of a scheduler run record.
-spec facts_of_run(map()) -> {backup_ok | backup_failed, emqx_guard_notify_format:facts()}.
facts_of_run(Run) ->
    Event =
        case maps:get(result, Run, failed) of
            ok -> backup_ok;
            _ -> backup_failed
        end,
    Facts0 = maps:with([file, path, size, sha256, duration_ms, trigger], Run),
    Facts1 =
        case maps:find(started_at, Run) of
            {ok, T} -> Facts0#{time => T};
            error -> Facts0
        end,
    Facts =
        case {Event, maps:find(error, Run)} of
            {backup_failed, {ok, Why}} -> Facts1#{reason => Why};
            {backup_failed, error} -> Facts1#{reason => <<"unknown">>};
            _ -> Facts1
        end,
    {Event, Facts}.

%% @doc Sends a test message now on every configured channel, once (no retries), in the
%% calling process, and returns what each server answered. For `guard notify_test'.
-spec send_test() -> [{channel(), {ok, binary()} | {error, binary()}}].
send_test() ->
    Opts =
        try
            gen_server:call(?SERVER, opts, 5000)
        catch
            exit:_ -> opts(application:get_env(emqx_guard, notify, #{}))
        end,
    Settings = current_settings(maps:get(settings, Opts)),
    Facts = enrich(#{}, Settings),
    Results = [
        {C, deliver(C, test, Facts, Settings, Opts)}
     || C <- channels(Settings)
    ],
    case whereis(?SERVER) of
        undefined -> ok;
        Pid -> lists:foreach(fun({C, R}) -> gen_server:cast(Pid, {tested, C, R}) end, Results)
    end,
    [{C, simple(R)} || {C, R} <- Results].

%% @doc The last delivery on each channel and the dead-man watch.
-spec status() -> #{
    email_enabled := boolean(),
    webhook_enabled := boolean(),
    email := delivery() | undefined,
    webhook := delivery() | undefined,
    queued := #{channel() => [emqx_guard_notify_format:event()]},
    last_success := integer() | undefined,
    dead_man_deadline := integer() | undefined
}.
status() ->
    try
        gen_server:call(?SERVER, status, 5000)
    catch
        exit:_ ->
            #{
                email_enabled => false,
                webhook_enabled => false,
                email => undefined,
                webhook => undefined,
                queued => #{},
                last_success => undefined,
                dead_man_deadline => undefined
            }
    end.

%% @doc Lines for `guard backup_status': for each configured channel, its last delivery
%% (nothing when no channel is configured).
-spec status_lines() -> [binary()].
status_lines() ->
    S = status(),
    [
        channel_line(C, maps:get(C, S))
     || {C, Enabled} <- [{email, email_enabled}, {webhook, webhook_enabled}],
        maps:get(Enabled, S)
    ].

%% @doc Tells the dead-man watch that a backup made elsewhere in the cluster succeeded at
%% `AtMs' (a verified copy of it arrived here). Sends nothing.
-spec backup_seen(integer()) -> ok.
backup_seen(AtMs) when is_integer(AtMs) ->
    gen_server:cast(?SERVER, {backup_seen, AtMs}).

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
    start_httpc(),
    St0 = #st{opts = Opts, settings = maps:get(settings, Opts), last_success = now_ms()},
    {ok, arm(load_watch(St0))}.

%% @private
handle_call(status, _From, St) ->
    Settings = current_settings(St#st.settings),
    {reply,
        #{
            email_enabled => emqx_guard_notify_config:email_enabled(Settings),
            webhook_enabled => emqx_guard_notify_config:webhook_enabled(Settings),
            email => maps:get(email, St#st.last, undefined),
            webhook => maps:get(webhook, St#st.last, undefined),
            queued => maps:map(fun(_C, Q) -> [E || {E, _} <- Q] end, St#st.queued),
            last_success => St#st.last_success,
            dead_man_deadline => St#st.deadline
        },
        St};
handle_call(opts, _From, St) ->
    {reply, St#st.opts, St};
handle_call(check_dead_man, _From, St) ->
    {reply, ok, arm(dead_man_check(St))};
handle_call(_Other, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
handle_cast({notify, Event, Facts}, St0) ->
    St =
        case Event of
            backup_ok ->
                arm(save_watch(St0#st{
                    last_success = maps:get(time, Facts, now_ms()), warned_for = undefined
                }));
            _ ->
                St0
        end,
    {noreply, dispatch(Event, Facts, St)};
handle_cast({backup_seen, At}, St = #st{last_success = Last}) when At > Last ->
    {noreply, arm(save_watch(St#st{last_success = At, warned_for = undefined}))};
handle_cast({backup_seen, _At}, St) ->
    {noreply, St};
handle_cast({tested, Channel, Result}, St) ->
    D = #{event => test, attempts => 1, at => now_ms()},
    {noreply, St#st{last = (St#st.last)#{Channel => finished(D, Result)}}};
handle_cast(_Other, St) ->
    {noreply, St}.

%% @private
handle_info({attempt, Pid, Attempt, Result}, St) ->
    case maps:find(Pid, St#st.workers) of
        {ok, {Channel, _Mon}} ->
            Prev = maps:get(Channel, St#st.last),
            D = finished(Prev#{attempts => Attempt, at => now_ms()}, Result),
            {noreply, St#st{last = (St#st.last)#{Channel => D}}};
        error ->
            {noreply, St}
    end;
handle_info({'DOWN', Mon, process, Pid, Why}, St) ->
    case maps:take(Pid, St#st.workers) of
        {{Channel, Mon}, Workers} ->
            Last =
                case {Why, maps:get(Channel, St#st.last)} of
                    {normal, D} ->
                        D;
                    {_, D} ->
                        ?LOG_ERROR(#{msg => emqx_guard_notify_crashed, channel => Channel, reason => Why}),
                        D#{state => failed, error => <<"the sender crashed">>}
                end,
            {noreply, next_queued(Channel, St#st{workers = Workers, last = (St#st.last)#{Channel => Last}})};
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
    emqx_guard_notify_config:redacted_status(Status).

%% @private
terminate(_Reason, St) ->
    [exit(Pid, kill) || Pid <- maps:keys(St#st.workers)],
    _ = inets:stop(httpc, ?PROFILE),
    ok.

%%--------------------------------------------------------------------------------------------
%% Deliveries
%%--------------------------------------------------------------------------------------------

dispatch(Event, Facts, St) ->
    Settings = current_settings(St#st.settings),
    case emqx_guard_notify_config:wants(Event, Settings) of
        false ->
            St;
        true ->
            lists:foldl(
                fun(Channel, Acc) -> dispatch(Channel, Event, Facts, Settings, Acc) end,
                St,
                channels(Settings)
            )
    end.

%% Starts the delivery now when the channel is idle, else queues it (see the module doc).
dispatch(Channel, Event, Facts, Settings, St) ->
    case busy(Channel, St) of
        false ->
            start_worker(Channel, Event, Facts, Settings, St);
        true ->
            Queue0 = maps:get(Channel, St#st.queued, []),
            Kind = kind(Event),
            {Superseded, Kept} = lists:partition(fun({E, _}) -> kind(E) =:= Kind end, Queue0),
            lists:foreach(
                fun({Old, _}) ->
                    ?LOG_INFO(#{msg => emqx_guard_notify_superseded, channel => Channel, event => Old, by => Event})
                end,
                Superseded
            ),
            St#st{queued = (St#st.queued)#{Channel => Kept ++ [{Event, Facts}]}}
    end.

busy(Channel, St) ->
    lists:any(fun({C, _Mon}) -> C =:= Channel end, maps:values(St#st.workers)).

kind(backup_ok) -> ok;
kind(_) -> alert.

%% The channel's delivery finished: starts the oldest waiting event, with the current settings
%% (dropped when the channel is no longer configured or no longer wants it).
next_queued(Channel, St) ->
    case maps:get(Channel, St#st.queued, []) of
        [] ->
            St;
        [{Event, Facts} | Rest] ->
            St1 = St#st{queued = (St#st.queued)#{Channel => Rest}},
            Settings = current_settings(St1#st.settings),
            case
                lists:member(Channel, channels(Settings)) andalso
                    emqx_guard_notify_config:wants(Event, Settings)
            of
                true -> start_worker(Channel, Event, Facts, Settings, St1);
                false -> next_queued(Channel, St1)
            end
    end.

start_worker(Channel, Event, Facts, Settings, St) ->
    Server = self(),
    Opts = St#st.opts,
    {Pid, Mon} = spawn_monitor(fun() -> worker(Server, Channel, Event, Facts, Settings, Opts) end),
    D = #{event => Event, state => sending, attempts => 1, at => now_ms()},
    St#st{workers = (St#st.workers)#{Pid => {Channel, Mon}}, last = (St#st.last)#{Channel => D}}.

worker(Server, Channel, Event, Facts0, Settings, Opts) ->
    Facts = enrich(Facts0, Settings),
    attempt(Server, Channel, Event, Facts, Settings, Opts, 1, maps:get(backoff_ms, Opts)).

attempt(Server, Channel, Event, Facts, Settings, Opts, N, Backoff) ->
    Result = deliver(Channel, Event, Facts, Settings, Opts),
    case {Result, Backoff} of
        {{ok, Answer}, _} ->
            ?LOG_INFO(#{msg => emqx_guard_notify_sent, channel => Channel, event => Event,
                attempts => N, answer => Answer}),
            Server ! {attempt, self(), N, Result};
        {{retry, Why}, [Wait | Rest]} ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_retrying, channel => Channel, event => Event,
                attempt => N, error => Why, retry_in_ms => Wait}),
            Server ! {attempt, self(), N, {retrying, Why}},
            timer:sleep(Wait),
            attempt(Server, Channel, Event, Facts, Settings, Opts, N + 1, Rest);
        {{_, Why}, _} ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_failed, channel => Channel, event => Event,
                attempts => N, error => Why, target => target(Channel, Settings)}),
            Server ! {attempt, self(), N, {error, Why}}
    end.

%% @doc One delivery attempt of Event on Channel: `{ok, ServerAnswer}', `{retry, Why}' for a
%% failure worth another try, or `{error, Why}' for one the operator has to fix.
-spec deliver(channel(), emqx_guard_notify_format:event(), map(), map(), map()) ->
    {ok, binary()} | {retry, binary()} | {error, binary()}.
deliver(email, Event, Facts, Settings, Opts) ->
    Config0 = emqx_guard_notify_config:smtp_config(Settings, maps:get(timeout_ms, Opts)),
    Config = Config0#{deadline_ms => maps:get(deadline_ms, Opts, ?DEFAULT_DEADLINE)},
    Subject = emqx_guard_notify_format:subject(Event, Facts),
    Body = emqx_guard_notify_format:body(Event, Facts),
    try emqx_guard_nif:send_mail(Config, Subject, Body) of
        {ok, Answer} ->
            {ok, Answer};
        {error, {Reason, Detail}} ->
            Line = <<(atom_to_binary(Reason))/binary, ": ", Detail/binary>>,
            case lists:member(Reason, [connect, timeout, transient, smtp]) of
                true -> {retry, Line};
                false -> {error, Line}
            end
    catch
        Class:Err ->
            {retry, iolist_to_binary(io_lib:format("the mail library failed: ~p:~0p", [Class, Err]))}
    end;
deliver(webhook, Event, Facts, Settings, Opts) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    Url = maps:get(notify_webhook_url, S),
    Json = emqx_guard_notify_format:webhook(Event, Facts),
    Timeout = maps:get(timeout_ms, Opts),
    HttpOpts = [{timeout, Timeout}, {connect_timeout, Timeout}, {autoredirect, false}] ++ ssl_opts(Url, S),
    Request = {binary_to_list(Url), [{"user-agent", "emqx_guard"}], "application/json", Json},
    try httpc:request(post, Request, HttpOpts, [{body_format, binary}], profile()) of
        {ok, {{_, Code, Phrase}, _Headers, RespBody}} ->
            Answer = iolist_to_binary([
                "HTTP ", integer_to_binary(Code), " ", Phrase, answer_body(RespBody)
            ]),
            if
                Code >= 200, Code < 300 -> {ok, Answer};
                Code >= 500; Code =:= 429; Code =:= 408 -> {retry, Answer};
                true -> {error, Answer}
            end;
        {error, Why} ->
            Line = iolist_to_binary(io_lib:format("HTTP request failed: ~0p", [Why])),
            %% a refused certificate stays refused: an operator has to fix it, no retry
            case binary:match(Line, <<"tls_alert">>) of
                nomatch -> {retry, Line};
                _ -> {error, Line}
            end
    catch
        Class:Err ->
            {error, iolist_to_binary(io_lib:format("HTTP request failed: ~p:~0p", [Class, Err]))}
    end.

answer_body(<<>>) ->
    <<>>;
answer_body(B) ->
    Text = string:trim(binary:part(B, 0, min(byte_size(B), 200))),
    <<": ", Text/binary>>.

ssl_opts(Url, S) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} ->
            case string:lowercase(Scheme) of
                <<"https">> -> [{ssl, tls_options(Host, S)}];
                _ -> []
            end;
        _ ->
            []
    end.

%% The certificate must name the URL's host (httpc passes it on: SNI for names); for a DNS
%% name the https match fun also accepts wildcard certificates, as browsers do. An IP address
%% is matched against the certificate's IP entries by the default check.
tls_options(Host, S) ->
    case maps:get(notify_tls_verify, S) of
        false ->
            [{verify, verify_none}];
        true ->
            [
                {verify, verify_peer},
                {cacerts, system_cacerts() ++ file_cacerts(maps:get(notify_ca_file, S))},
                {depth, 10}
            ] ++ hostname_check(Host)
    end.

hostname_check(Host) ->
    case inet:parse_address(binary_to_list(Host)) of
        {ok, Ip} ->
            %% httpc hands the address to ssl as a DNS name, which never matches an IP entry
            [{customize_hostname_check, [{match_fun, ip_match_fun(Ip)}]}];
        {error, _} ->
            [{customize_hostname_check, [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}]
    end.

ip_match_fun(Ip) ->
    Bytes =
        case Ip of
            {_, _, _, _} -> tuple_to_list(Ip);
            _ -> binary_to_list(<<<<W:16>> || W <- tuple_to_list(Ip)>>)
        end,
    fun
        (_Ref, {iPAddress, Presented}) when is_list(Presented) -> Presented =:= Bytes;
        (_Ref, {iPAddress, Presented}) when is_binary(Presented) -> Presented =:= list_to_binary(Bytes);
        (_Ref, _Presented) -> false
    end.

system_cacerts() ->
    try
        public_key:cacerts_get()
    catch
        _:_ -> []
    end.

file_cacerts(<<>>) ->
    [];
file_cacerts(Path) ->
    case file:read_file(Path) of
        {ok, Pem} -> [Der || {'Certificate', Der, not_encrypted} <- public_key:pem_decode(Pem)];
        {error, _} -> []
    end.

profile() ->
    case whereis(httpc:profile_name(?PROFILE)) of
        undefined -> default;
        _ -> ?PROFILE
    end.

%% inets and ssl are in the app's `applications' (started before us): starting them from here
%% would deadlock, as this runs inside the application controller's start of emqx_guard.
start_httpc() ->
    case inets:start(httpc, [{profile, ?PROFILE}]) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_notify_httpc_not_started, reason => Why})
    end.

channels(Settings) ->
    [email || emqx_guard_notify_config:email_enabled(Settings)] ++
        [webhook || emqx_guard_notify_config:webhook_enabled(Settings)].

target(email, Settings) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    iolist_to_binary([maps:get(notify_smtp_server, S), ":", integer_to_binary(maps:get(notify_smtp_port, S))]);
target(webhook, Settings) ->
    maps:get(notify_webhook_url, emqx_guard_notify_config:redacted(emqx_guard_notify_config:of_settings(Settings))).

finished(D, {ok, Answer}) ->
    maps:remove(error, D#{state => sent, answer => Answer});
finished(D, {retrying, Why}) ->
    D#{state => retrying, error => Why};
finished(D, {_, Why}) ->
    D#{state => failed, error => Why}.

simple({ok, A}) -> {ok, A};
simple({_, Why}) -> {error, Why}.

%%--------------------------------------------------------------------------------------------
%% Facts
%%--------------------------------------------------------------------------------------------

%% Adds what the caller does not know: node, zone, next fire, kept backups, zone offsets.
enrich(Facts0, Settings) ->
    Now = now_ms(),
    Facts1 = maps:merge(#{node => node(), time => Now}, Facts0),
    Zone = nif_ok(fun() -> emqx_guard_nif:resolve_zone(zone_setting(Settings)) end, undefined),
    Cron = maps:get(backup_cron, Settings, undefined),
    Next =
        case {Cron, Zone} of
            {undefined, _} -> undefined;
            {_, undefined} -> undefined;
            _ -> nif_ok(fun() -> first(emqx_guard_nif:next_fires(Cron, Zone, Now, 1)) end, undefined)
        end,
    Kept = nif_ok(
        fun() ->
            case emqx_guard_nif:list_backups(unicode:characters_to_binary(emqx_guard_emqx:backup_dir())) of
                {ok, L} -> {ok, [maps:with([name, size, mtime], B) || B <- L]};
                Other -> Other
            end
        end,
        undefined
    ),
    Facts2 = maps:merge(
        maps:filter(fun(_, V) -> V =/= undefined end, #{zone => Zone, next_fire => Next, kept => Kept}),
        Facts1
    ),
    Offsets = maps:from_list([
        {K, Off}
     || Zone =/= undefined,
        K <- [time, next_fire, last_success, deadline],
        is_integer(maps:get(K, Facts2, undefined)),
        Off <- [nif_ok(fun() -> emqx_guard_nif:utc_offset(Zone, maps:get(K, Facts2)) end, 0)]
    ]),
    Facts2#{offsets => Offsets}.

first({ok, [X | _]}) -> {ok, X};
first({ok, []}) -> {ok, undefined};
first(Other) -> Other.

zone_setting(Settings) ->
    case maps:get(backup_timezone, Settings, <<"local">>) of
        Z when is_binary(Z) -> Z;
        Z -> unicode:characters_to_binary(Z)
    end.

nif_ok(Fun, Default) ->
    try Fun() of
        {ok, V} -> V;
        _ -> Default
    catch
        _:_ -> Default
    end.

%%--------------------------------------------------------------------------------------------
%% Dead-man watch
%%--------------------------------------------------------------------------------------------

dead_man_check(St) ->
    Settings = current_settings(St#st.settings),
    Deadline = deadline(St#st.last_success, Settings, St#st.opts),
    St1 = St#st{deadline = Deadline},
    Now = now_ms(),
    Due =
        is_integer(Deadline) andalso Now >= Deadline andalso
            St#st.warned_for =/= St#st.last_success andalso exports_here(),
    case Due of
        false ->
            St1;
        true ->
            ?LOG_WARNING(#{msg => emqx_guard_no_recent_backup, last_success => St#st.last_success,
                deadline => Deadline}),
            Facts = #{time => Now, last_success => St#st.last_success, deadline => Deadline},
            save_watch(dispatch(dead_man, Facts, St1#st{warned_for = St#st.last_success}))
    end.

%% Whether this node exports the scheduled backups: the lowest running core node. The other
%% nodes stay silent, or every node of a cluster would report the same silence.
exports_here() ->
    case emqx_guard_emqx:running_core_nodes() of
        [Exporter | _] -> Exporter =:= node();
        [] -> false
    end.

%% The second scheduled fire after the last success, plus the grace.
deadline(LastSuccess, Settings, Opts) ->
    Cron = maps:get(backup_cron, Settings, undefined),
    Zone = zone_setting(Settings),
    Grace =
        case maps:get(dead_man_grace_ms, Opts) of
            undefined -> maps:get(export_timeout, Settings, 600) * 1000 + 60000;
            G -> G
        end,
    case Cron =/= undefined andalso nif_ok(fun() -> emqx_guard_nif:next_fires(Cron, Zone, LastSuccess, 2) end, []) of
        [_, Second] -> Second + Grace;
        _ -> undefined
    end.

arm(St) ->
    _ =
        case St#st.timer of
            {Old, _} -> erlang:cancel_timer(Old);
            undefined -> ok
        end,
    St1 =
        case St#st.deadline of
            undefined -> St#st{deadline = deadline(St#st.last_success, current_settings(St#st.settings), St#st.opts)};
            _ -> St
        end,
    Interval = maps:get(check_interval_ms, St#st.opts),
    Wait =
        case St1#st.deadline of
            D when is_integer(D), St1#st.warned_for =/= St1#st.last_success ->
                max(1000, min(Interval, D - now_ms()));
            _ ->
                Interval
        end,
    Ref = make_ref(),
    TRef = erlang:send_after(Wait, self(), {check_dead_man, Ref}),
    St1#st{timer = {TRef, Ref}}.

load_watch(St) ->
    File = state_file(St#st.opts),
    Saved =
        try emqx_guard_store:read(File) of
            {ok, #{last_success := LS} = M} when is_integer(LS) -> {LS, maps:get(warned_for, M, undefined)};
            _ -> from_last_run()
        catch
            _:_ -> from_last_run()
        end,
    case Saved of
        {LS1, Warned} -> St#st{last_success = LS1, warned_for = Warned};
        none -> save_watch(St)
    end.

%% Without our own record: the scheduler's last run if it succeeded, else start counting now.
from_last_run() ->
    try emqx_guard_run_state:load() of
        #{last_run := #{result := ok, started_at := T}} when is_integer(T) -> {T, undefined};
        _ -> none
    catch
        _:_ -> none
    end.

save_watch(St) ->
    Term = #{last_success => St#st.last_success, warned_for => St#st.warned_for},
    _ =
        try emqx_guard_store:write(state_file(St#st.opts), Term) of
            ok -> ok;
            {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_notify_state_not_saved, reason => Why})
        catch
            C:E -> ?LOG_WARNING(#{msg => emqx_guard_notify_state_not_saved, reason => {C, E}})
        end,
    St#st{deadline = undefined}.

state_file(Opts) ->
    case maps:get(state_file, Opts) of
        undefined -> emqx_guard_store:path("notify_state");
        F -> F
    end.

%%--------------------------------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------------------------------

opts(Given) ->
    maps:merge(
        #{
            backoff_ms => ?DEFAULT_BACKOFF,
            timeout_ms => ?DEFAULT_TIMEOUT,
            deadline_ms => ?DEFAULT_DEADLINE,
            dead_man_grace_ms => undefined,
            check_interval_ms => ?DEFAULT_CHECK,
            settings => fun emqx_guard_settings:get/0,
            state_file => undefined
        },
        Given
    ).

current_settings(Fun) ->
    try Fun() of
        S when is_map(S) -> S;
        _ -> #{}
    catch
        C:E ->
            ?LOG_WARNING(#{msg => emqx_guard_notify_settings_unreadable, reason => {C, E}}),
            #{}
    end.

channel_line(Channel, undefined) ->
    iolist_to_binary(["notify ", atom_to_binary(Channel), ": configured, nothing sent yet"]);
channel_line(Channel, D) ->
    #{event := Event, state := State, attempts := N, at := At} = D,
    When = emqx_guard_notify_format:local_time(At, 0, <<" ">>),
    What =
        case State of
            sent -> ["sent (", maps:get(answer, D, <<>>), ")"];
            sending -> ["sending"];
            retrying -> ["retrying after attempt ", integer_to_binary(N), ": ", maps:get(error, D, <<>>)];
            failed -> ["FAILED after ", integer_to_binary(N), " attempt(s): ", maps:get(error, D, <<>>)]
        end,
    iolist_to_binary(["notify ", atom_to_binary(Channel), ": last ", atom_to_binary(Event), " at ", When,
        " UTC: ", What]).

now_ms() ->
    erlang:system_time(millisecond).
