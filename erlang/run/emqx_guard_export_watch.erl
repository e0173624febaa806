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
-module(emqx_guard_export_watch).

-include_lib("kernel/include/logger.hrl").

-export([run/2]).

-export_type([error/0]).

%% Why an export failed; `tarball': the file EMQX named for it before it failed.
-type error() ::
    {export_failed, #{reason := term(), tarball => binary()}}
    | {export_crashed, #{class := error | exit | throw, reason := term(), tarball => binary()}}
    | {export_timeout, #{timeout_ms := timeout(), tarball => binary()}}.

%% What the export fun returns: EMQX's answer, or what it raised.
-type called() :: {returned, term()} | {raised, error | exit | throw, term()}.
%% The `print_fun' EMQX calls with its progress lines (the first names the tarball).
-type print_fun() :: fun((io:format(), [term()]) -> ok).

%% @doc Runs Export(PrintFun) in a linked, monitored process and waits at most TimeoutMs for it
%% (see the module doc).
-spec run(fun((print_fun()) -> called()), timeout()) ->
    {ok, #{filename := binary(), size := non_neg_integer(), atom() => term()}}
    | {error, error()}.
run(Export, TimeoutMs) ->
    Parent = self(),
    Tag = make_ref(),
    Print = fun(_Fmt, Args) -> announce_tarball(Parent, Tag, Args) end,
    {Pid, MRef} = spawn_opt(fun() -> Parent ! {Tag, Export(Print)} end, [link, monitor]),
    Deadline =
        case TimeoutMs of
            infinity -> infinity;
            _ -> erlang:monotonic_time(millisecond) + TimeoutMs
        end,
    await_export(Pid, MRef, Tag, TimeoutMs, Deadline, #{}).

%% Runs inside EMQX's export: never raises, always ok.
announce_tarball(Parent, Tag, Args) ->
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

await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made) ->
    Left =
        case Deadline of
            infinity -> infinity;
            _ -> max(Deadline - erlang:monotonic_time(millisecond), 0)
        end,
    receive
        {Tag, {tarball, Path}} ->
            await_export(Pid, MRef, Tag, TimeoutMs, Deadline, Made#{tarball => Path});
        {Tag, Result} ->
            detach(Pid, MRef),
            export_result(Result, Made);
        {'DOWN', MRef, process, Pid, Why} ->
            detach(Pid, MRef),
            {error, {export_crashed, maps:merge(#{class => exit, reason => Why}, announced(Tag, Made))}}
    after Left ->
        unlink(Pid),
        exit(Pid, kill),
        receive
            {'DOWN', MRef, process, Pid, _} -> ok
        end,
        detach(Pid, MRef),
        ?LOG_WARNING(#{msg => emqx_guard_export_killed, timeout_ms => TimeoutMs}),
        {error, {export_timeout, maps:merge(#{timeout_ms => TimeoutMs}, announced(Tag, Made))}}
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
