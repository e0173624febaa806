%% @doc TEST-ONLY stand-in for EMQX's `emqx_ctl' (the `emqx ctl' command line).
%%
%% Behaves as /work/shared/EMQX_CONTRACT.md describes (read from emqx/emqx apps/emqx_ctl):
%% <ul>
%% <li>The command table is an ETS table owned by a long-lived `emqx_ctl' gen_server, never by the
%%     caller, so a registration outlives the process that made it. The server is started lazily
%%     (unlinked) by the first call that needs it, or explicitly with `start_link/0' / `start/0'.</li>
%% <li>`register_command(Cmd, {M, F}, Opts) -> ok' (a call; registering again overwrites),
%%     `unregister_command(Cmd) -> ok' (a CAST, like EMQX: it is asynchronous).</li>
%% <li>`run_command([CmdStr | Args])' calls `M:F(Args)' with the arguments as charlists, inside a
%%     try/catch: a crash is logged (`ctl_command_crashed') and returned as `{error, Reason}',
%%     printing nothing. The callback's return value is returned as it is. An unknown command
%%     prints the help listing and returns `{error, cmd_not_found}' (what EMQX does).</li>
%% <li>`run_command([])' prints the help listing: `Usage: emqx ctl', then for every command that is
%%     not hidden a line of 110 dashes and `M:F(usage)' with the ATOM `usage', OUTSIDE any try
%%     (a crash there propagates to the caller, as it breaks `emqx ctl' help in EMQX).</li>
%% <li>`print/1,2' format and then write through `io:format("~ts", ...)'; `usage/1' pads the command
%%     column to the widest command plus one and prints `# Description', and (exactly like EMQX)
%%     passes the formatted text to `io:format/1' AS A FORMAT, so a `~' in a usage text is
%%     interpreted a second time.</li>
%% </ul>
%% Test-control API (stand-in only): `start/0', `start_link/0', `stop/0',
%% `lookup_command(Cmd) -> {ok, {M, F}} | {error, cmd_not_found}', `get_commands/0',
%% `format_usage/1' (the text `usage/1' would print).
-module(emqx_ctl).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start/0, start_link/0, stop/0]).
-export([register_command/2, register_command/3, unregister_command/1]).
-export([run_command/1, lookup_command/1, get_commands/0]).
-export([print/1, print/2, usage/1, usage/2, format_usage/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TAB, emqx_command).

%%--------------------------------------------------------------------
%% Life cycle (stand-in only)

%% @doc Starts the stand-in server linked to the caller (or returns the running one).
-spec start_link() -> {ok, pid()}.
start_link() ->
    case gen_server:start_link({local, ?MODULE}, ?MODULE, [], []) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, Pid}} -> {ok, Pid}
    end.

%% @doc Starts the stand-in server unlinked, so it survives the calling test case process.
-spec start() -> {ok, pid()}.
start() ->
    case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, Pid}} -> {ok, Pid}
    end.

%% @doc Stops the stand-in server; its table (all registrations) goes with it.
-spec stop() -> ok.
stop() ->
    try
        gen_server:stop(?MODULE)
    catch
        exit:noproc -> ok
    end.

%%--------------------------------------------------------------------
%% EMQX API

-spec register_command(atom(), {module(), atom()}) -> ok.
register_command(Cmd, MF) ->
    register_command(Cmd, MF, []).

-spec register_command(atom(), {module(), atom()}, list()) -> ok.
register_command(Cmd, {M, F} = MF, Opts) when is_atom(Cmd), is_atom(M), is_atom(F), is_list(Opts) ->
    {ok, _} = start(),
    gen_server:call(?MODULE, {register, Cmd, MF, Opts}).

-spec unregister_command(atom()) -> ok.
unregister_command(Cmd) when is_atom(Cmd) ->
    {ok, _} = start(),
    gen_server:cast(?MODULE, {unregister, Cmd}).

-spec run_command([string()]) -> term().
run_command([]) ->
    help();
run_command([CmdStr | Args]) when is_list(CmdStr) ->
    Found =
        try list_to_existing_atom(CmdStr) of
            Cmd -> lookup_command(Cmd)
        catch
            error:badarg -> {error, cmd_not_found}
        end,
    case Found of
        {ok, {M, F}} ->
            try
                M:F(Args)
            catch
                Class:Reason:Stack ->
                    ?LOG_ERROR(#{
                        msg => "ctl_command_crashed",
                        exception => Class,
                        reason => Reason,
                        stacktrace => Stack,
                        module => M,
                        function => F
                    }),
                    {error, Reason}
            end;
        {error, Reason} ->
            _ = help(),
            {error, Reason}
    end.

%% @doc Stand-in only: the handler registered for `Cmd'.
-spec lookup_command(atom()) -> {ok, {module(), atom()}} | {error, cmd_not_found}.
lookup_command(Cmd) when is_atom(Cmd) ->
    case ets:info(?TAB) of
        undefined ->
            {error, cmd_not_found};
        _ ->
            case ets:match(?TAB, {{'_', Cmd}, '$1', '_'}) of
                [[MF]] -> {ok, MF};
                [] -> {error, cmd_not_found}
            end
    end.

%% @doc Stand-in only: every registered command, in registration order.
-spec get_commands() -> [{atom(), module(), atom()}].
get_commands() ->
    case ets:info(?TAB) of
        undefined -> [];
        _ -> [{Cmd, M, F} || {{_Seq, Cmd}, {M, F}, _Opts} <- ets:tab2list(?TAB)]
    end.

-spec print(io:format()) -> ok.
print(Fmt) ->
    print(Fmt, []).

-spec print(io:format(), [term()]) -> ok.
print(Fmt, Args) ->
    io:format("~ts", [lists:flatten(io_lib:format(Fmt, Args))]).

-spec usage([{string(), string()}]) -> ok.
usage(UsageList) ->
    %% As in EMQX: the formatted text is used as a format string.
    io:format(format_usage(UsageList)).

-spec usage(string(), string()) -> ok.
usage(CmdLine, Desc) ->
    usage([{CmdLine, Desc}]).

%% @doc The text `usage/1' hands to io:format/1: each command line padded to the width of the
%% widest one plus one, then `# ' and the description. Multi-line entries are zipped line by line.
-spec format_usage([{string(), string()}]) -> string().
format_usage(UsageList) ->
    Width = lists:max([0 | [line_width(C) || {C, _} <- UsageList]]),
    lists:append([usage_lines(C, D, Width) || {C, D} <- UsageList]).

%%--------------------------------------------------------------------
%% gen_server

-spec init([]) -> {ok, non_neg_integer()}.
init([]) ->
    ?TAB = ets:new(?TAB, [named_table, protected, ordered_set]),
    {ok, 0}.

-spec handle_call(term(), gen_server:from(), non_neg_integer()) ->
    {reply, term(), non_neg_integer()}.
handle_call({register, Cmd, MF, Opts}, _From, Seq) ->
    case ets:match(?TAB, {{'$1', Cmd}, '_', '_'}) of
        [] ->
            true = ets:insert(?TAB, {{Seq, Cmd}, MF, Opts}),
            {reply, ok, Seq + 1};
        [[OldSeq] | _] ->
            true = ets:insert(?TAB, {{OldSeq, Cmd}, MF, Opts}),
            {reply, ok, Seq}
    end;
handle_call(_Req, _From, Seq) ->
    {reply, ignored, Seq}.

-spec handle_cast(term(), non_neg_integer()) -> {noreply, non_neg_integer()}.
handle_cast({unregister, Cmd}, Seq) ->
    true = ets:match_delete(?TAB, {{'_', Cmd}, '_', '_'}),
    {noreply, Seq};
handle_cast(_Msg, Seq) ->
    {noreply, Seq}.

-spec handle_info(term(), non_neg_integer()) -> {noreply, non_neg_integer()}.
handle_info(_Info, Seq) ->
    {noreply, Seq}.

%%--------------------------------------------------------------------
%% internal

help() ->
    case get_commands_with_opts() of
        [] ->
            print("No commands available.~n");
        Cmds ->
            print("Usage: ~ts~n", ["emqx ctl"]),
            lists:foreach(
                fun({{M, F}, Opts}) ->
                    case proplists:get_bool(hidden, Opts) of
                        true ->
                            ok;
                        false ->
                            print("~110..-s~n", [""]),
                            %% deliberately outside any try, as in EMQX
                            M:F(usage)
                    end
                end,
                Cmds
            )
    end.

get_commands_with_opts() ->
    case ets:info(?TAB) of
        undefined -> [];
        _ -> [{MF, Opts} || {_Key, MF, Opts} <- ets:tab2list(?TAB)]
    end.

split_lines(Text) ->
    [L || L <- string:split(Text, "\n", all), L =/= []].

line_width(CmdLine) ->
    lists:max([0 | [iolist_size(L) || L <- split_lines(CmdLine)]]).

usage_lines(CmdLine, Desc, 0) ->
    usage_lines(CmdLine, Desc, iolist_size(CmdLine));
usage_lines(CmdLine, Desc, Width) ->
    Fmt = "~-" ++ integer_to_list(Width + 1) ++ "s# ~ts~n",
    lists:append([
        lists:flatten(io_lib:format(Fmt, [C, D]))
     || {C, D} <- zip_lines(split_lines(CmdLine), split_lines(Desc))
    ]).

zip_lines([C | Cs], [D | Ds]) -> [{C, D} | zip_lines(Cs, Ds)];
zip_lines([C | Cs], []) -> [{C, ""} | zip_lines(Cs, [])];
zip_lines([], [D | Ds]) -> [{"", D} | zip_lines([], Ds)];
zip_lines([], []) -> [].
