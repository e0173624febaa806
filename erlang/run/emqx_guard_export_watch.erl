%% @doc The process one EMQX export runs in: linked to the caller (it dies with the caller) and
%% monitored, cut off at its timeout, and listened to for the tarball's name. Calls nothing of
%% EMQX itself: the export is the fun `emqx_guard_emqx:export/2' gives (the one module that calls
%% EMQX), called with the `print_fun' to hand EMQX. Outcomes of `run/2':
%% <ul>
%% <li>`{ok, #{filename := FullPath :: binary(), size := Bytes}}' (plus whatever else EMQX
%%     reported, e.g. `created_at'); FullPath is absolute: a relative name (EMQX 5.3 with the
%%     relative data_dir `"data"') is resolved against EMQX's working directory;</li>
%% <li>`{error, {export_failed, #{reason := Reason}}}' when EMQX returned `{error, Reason}' (or
%%     anything that is not `{ok, #{filename := _}}': then Reason is `{unexpected_return, Value}');</li>
%% <li>`{error, {export_crashed, #{class := Class, reason := Reason}}}' when it raised or its
%%     process died;</li>
%% <li>`{error, {export_timeout, #{timeout_ms := TimeoutMs}}}' when it did not finish in time: the
%%     export process is killed (and gone) before this returns.</li>
%% </ul>
%% The Detail of a failure also says what the export had started to write: `tarball', the
%% absolute path of the file EMQX named before opening it (every EMQX from 5.1 hands it to the
%% `print_fun' first), absent when it never got that far. What a failed export left behind (that
%% tarball, cut short, and EMQX's staging directory next to it, the same name without `.tar.gz')
%% is the caller's to clean up.
%%
%% While it waits, the caller hears what the export does (`run/3''s OnEvent, called in the
%% caller's process): each line EMQX prints about its steps (`{line, Text}', as EMQX's own `data
%% export' prints them) and, at most once a second, how long it has run and the tarball it
%% writes (`{tick, ElapsedMs, Tarball | undefined}').
-module(emqx_guard_export_watch).

-include_lib("kernel/include/logger.hrl").

-export([run/2, run/3]).

-export_type([error/0, event/0, on_event/0]).

%% What the caller hears while the export runs.
-type event() :: {line, binary()} | {tick, non_neg_integer(), binary() | undefined}.
-type on_event() :: fun((event()) -> term()).
%% How often the caller hears that the export still runs.
-define(TICK_MS, 1000).

%% Why an export failed; `tarball': the file EMQX named for it before it failed.
-type error() ::
    {export_failed, #{reason := term(), tarball => binary()}}
    | {export_crashed, #{class := error | exit | throw, reason := term(), tarball => binary()}}
    | {export_timeout, #{timeout_ms := timeout(), tarball => binary()}}.

%% What the export fun returns: EMQX's answer, or what it raised.
-type called() :: {returned, term()} | {raised, error | exit | throw, term()}.
%% The `print_fun' EMQX calls with its progress lines (the first names the tarball).
-type print_fun() :: fun((io:format(), [term()]) -> ok).

%% @doc `run/3' with no one listening.
-spec run(fun((print_fun()) -> called()), timeout()) ->
    {ok, #{filename := binary(), size := non_neg_integer(), atom() => term()}}
    | {error, error()}.
run(Export, TimeoutMs) ->
    run(Export, TimeoutMs, fun(_) -> ok end).

%% @doc Runs Export(PrintFun) in a linked, monitored process and waits at most TimeoutMs for it,
%% telling OnEvent what it does (see the module doc).
-spec run(fun((print_fun()) -> called()), timeout(), on_event()) ->
    {ok, #{filename := binary(), size := non_neg_integer(), atom() => term()}}
    | {error, error()}.
run(Export, TimeoutMs, OnEvent) ->
    Parent = self(),
    Tag = make_ref(),
    Print = fun(Fmt, Args) -> announce(Parent, Tag, Fmt, Args) end,
    {Pid, MRef} = spawn_opt(fun() -> Parent ! {Tag, Export(Print)} end, [link, monitor]),
    {T0, Deadline} = emqx_guard_clock:deadline(TimeoutMs),
    Listen = #{on_event => OnEvent, t0 => T0, tick => T0 + ?TICK_MS},
    await_export(Pid, MRef, Tag, TimeoutMs, Deadline, #{}, Listen).

%% Runs inside EMQX's export: never raises, always ok. The line as EMQX words it, and the
%% tarball it names.
announce(Parent, Tag, Fmt, Args) ->
    _ =
        try
            Parent ! {Tag, {line, string:trim(unicode:characters_to_binary(io_lib:format(Fmt, Args)), trailing)}}
        catch
            _:_ -> ok
        end,
    try
        lists:foreach(
            fun(Arg) ->
                case is_tarball_path(Arg) of
                    true -> Parent ! {Tag, {tarball, unicode:characters_to_binary(filename:absname(Arg))}};
                    false -> ok
                end
            end,
            Args
        )
    catch
        _:_ -> ok
    end,
    ok.

is_tarball_path(Arg) when is_list(Arg); is_binary(Arg) ->
    case unicode:characters_to_list(Arg) of
        Path when is_list(Path) -> emqx_guard_core:is_export_name(filename:basename(Path));
        _ -> false
    end;
is_tarball_path(_) ->
    false.

await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made, Listen = #{on_event := OnEvent, t0 := T0, tick := Tick}) ->
    Now = erlang:monotonic_time(millisecond),
    %% the next tick, unless the deadline comes first
    {Wait, Due} =
        case Deadline of
            infinity -> {max(Tick - Now, 0), tick};
            _ when Deadline =< Tick -> {max(Deadline - Now, 0), deadline};
            _ -> {max(Tick - Now, 0), tick}
        end,
    receive
        {Tag, {tarball, Path}} ->
            await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made#{tarball => Path}, Listen);
        {Tag, {line, Line}} ->
            tell(OnEvent, {line, Line}),
            await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made, Listen);
        {Tag, Result} ->
            detach(Pid, MRef),
            export_result(Result, Made);
        {'DOWN', MRef, process, Pid, Why} ->
            detach(Pid, MRef),
            {error, {export_crashed, maps:merge(#{class => exit, reason => Why}, announced(Tag, Made))}}
    after Wait ->
        case Due of
            tick ->
                At = erlang:monotonic_time(millisecond),
                tell(OnEvent, {tick, At - T0, maps:get(tarball, Made, undefined)}),
                await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made, Listen#{tick := At + ?TICK_MS});
            deadline ->
                timed_out(Pid, MRef, Tag, TimeoutMs, Made)
        end
    end.

%% The export did not finish in time: its process is killed (and gone) before this returns.
timed_out(Pid, MRef, Tag, TimeoutMs, Made) ->
    unlink(Pid),
    exit(Pid, kill),
    receive
        {'DOWN', MRef, process, Pid, _} -> ok
    end,
    detach(Pid, MRef),
    ?LOG_WARNING(#{msg => emqx_guard_export_killed, timeout_ms => TimeoutMs}),
    {error, {export_timeout, maps:merge(#{timeout_ms => TimeoutMs}, announced(Tag, Made))}}.

%% The caller's listener: whatever it does, the export goes on.
tell(OnEvent, Event) ->
    try OnEvent(Event) of
        _ -> ok
    catch
        Class:Reason -> ?LOG_WARNING(#{msg => emqx_guard_export_listener_failed, exception => Class, reason => Reason})
    end.

%% What the (now gone) export process sent and nobody read yet: the tarball it announced.
announced(Tag, Made) ->
    receive
        {Tag, {tarball, Path}} -> announced(Tag, Made#{tarball => Path});
        {Tag, _Result} -> announced(Tag, Made)
    after 0 -> Made
    end.

export_result({returned, {ok, #{filename := File} = Info}}, _Made) when
    is_binary(File); is_list(File)
->
    Path = unicode:characters_to_binary(filename:absname(File)),
    Size =
        case Info of
            #{size := S} when is_integer(S), S >= 0 -> S;
            _ -> max(filelib:file_size(Path), 0)
        end,
    {ok, Info#{filename := Path, size => Size}};
export_result({returned, {error, Reason}}, Made) ->
    {error, {export_failed, Made#{reason => Reason}}};
export_result({returned, Other}, Made) ->
    {error, {export_failed, Made#{reason => {unexpected_return, Other}}}};
export_result({raised, Class, Reason}, Made) ->
    {error, {export_crashed, Made#{class => Class, reason => Reason}}}.

%% Drops the link and monitor of a finished export process, and any message they left behind
%% (an 'EXIT' arrives only when the caller traps exits).
detach(Pid, MRef) ->
    unlink(Pid),
    demonitor(MRef, [flush]),
    receive
        {'EXIT', Pid, _} -> ok
    after 0 -> ok
    end.
