%% @doc The native libraries shipped in the built package load on every Linux EMQX runs on:
%% each `priv/<arch>/emqx_guard_nif.so' is an ELF shared object for the machine its directory
%% names, and needs no glibc symbol version newer than 2.17 (EL7; EMQX's oldest platform).
%%
%% The ELF file is read here (header, section headers, the `.gnu.version_r' version needs), so
%% the check needs no tool; where binutils' objdump is installed its `-p' listing is compared
%% with what this reader found, so the reader cannot pass by finding nothing.
%%
%% The package is `_build/plugin/emqx_guard-<vsn>.tar.gz', or the file named by
%% EMQX_GUARD_PACKAGE (`make test' sets it).
-module(emqx_guard_elf_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([every_architecture_shipped/1, elf_machine_matches_directory/1, glibc_2_17_at_most/1,
         reader_agrees_with_objdump/1, reader_rejects_a_newer_glibc/1]).

-define(ARCHS, ["aarch64", "x86_64"]).
-define(MAX_GLIBC, [2, 17]).
%% e_machine values (ELF gABI): EM_X86_64, EM_AARCH64.
-define(MACHINES, #{"x86_64" => 62, "aarch64" => 183}).
-define(SHT_GNU_VERNEED, 16#6ffffffe).
-define(ET_DYN, 3).

-spec all() -> [atom()].
all() ->
    [every_architecture_shipped, elf_machine_matches_directory, glibc_2_17_at_most,
     reader_agrees_with_objdump, reader_rejects_a_newer_glibc].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Package = package_path(),
    {ok, Files} = erl_tar:extract(Package, [memory, compressed]),
    Libs = [
        {Arch, Bin}
     || {Name, Bin} <- Files,
        [_Top, _App, "priv", Arch, "emqx_guard_nif.so"] <- [filename:split(Name)]
    ],
    ct:pal("package ~ts: libraries for ~p", [Package, [A || {A, _} <- Libs]]),
    [{libs, Libs} | Config].

-spec end_per_suite(list()) -> ok.
end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------

%% @doc Both architectures EMQX ships packages for have a library, and no library lies elsewhere.
-spec every_architecture_shipped(list()) -> ok.
every_architecture_shipped(Config) ->
    ?assertEqual(?ARCHS, lists:sort([A || {A, _} <- ?config(libs, Config)])).

%% @doc Each library is a 64-bit little-endian ELF shared object for its directory's machine.
-spec elf_machine_matches_directory(list()) -> ok.
elf_machine_matches_directory(Config) ->
    lists:foreach(
        fun({Arch, Bin}) ->
            #{machine := Machine, type := Type} = elf(Bin),
            ?assertEqual({Arch, maps:get(Arch, ?MACHINES)}, {Arch, Machine}),
            ?assertEqual({Arch, ?ET_DYN}, {Arch, Type})
        end,
        ?config(libs, Config)
    ).

%% @doc No library needs a `GLIBC_' symbol version above 2.17 (it would not load on EL7).
-spec glibc_2_17_at_most(list()) -> ok.
glibc_2_17_at_most(Config) ->
    lists:foreach(
        fun({Arch, Bin}) ->
            Glibc = glibc_versions(Bin),
            ct:pal("~ts: GLIBC versions needed ~p", [Arch, [V || {_, V} <- Glibc]]),
            %% a library linked against glibc always needs some GLIBC_ version: none found
            %% means the reader missed them
            ?assertNotEqual({Arch, []}, {Arch, Glibc}),
            ?assertEqual({Arch, []}, {Arch, [{L, V} || {L, V} <- Glibc, newer_than_max(V)]})
        end,
        ?config(libs, Config)
    ).

%% @doc objdump -p lists the same version needs (skipped where binutils is not installed).
-spec reader_agrees_with_objdump(list()) -> ok | {skip, string()}.
reader_agrees_with_objdump(Config) ->
    case os:find_executable("objdump") of
        false ->
            {skip, "objdump (binutils) not installed"};
        Objdump ->
            lists:foreach(
                fun({Arch, Bin}) ->
                    File = filename:join(?config(priv_dir, Config), Arch ++ ".so"),
                    ok = file:write_file(File, Bin),
                    Out = os:cmd(Objdump ++ " -p '" ++ File ++ "'"),
                    {match, Seen} = re:run(Out, "\\s(GLIBC_[0-9.]+)\\s", [global, {capture, all_but_first, list}]),
                    ?assertEqual(
                        {Arch, lists:usort([V || [V] <- Seen])},
                        {Arch, lists:usort([V || {_, V} <- glibc_versions(Bin)])}
                    )
                end,
                ?config(libs, Config)
            )
    end.

%% @doc The check fails on a library needing a newer glibc: this machine's own libc (Debian 12,
%% glibc 2.36) needs GLIBC_2.35 or newer from ld-linux, and the reader sees that.
-spec reader_rejects_a_newer_glibc(list()) -> ok | {skip, string()}.
reader_rejects_a_newer_glibc(_Config) ->
    Candidates = filelib:wildcard("/lib/x86_64-linux-gnu/libc.so.6") ++
        filelib:wildcard("/lib/aarch64-linux-gnu/libc.so.6"),
    case Candidates of
        [] ->
            {skip, "no Debian libc.so.6 to read"};
        [Libc | _] ->
            {ok, Bin} = file:read_file(Libc),
            Needed = glibc_versions(Bin),
            ct:pal("~ts needs ~p", [Libc, Needed]),
            ?assertMatch([_ | _], [V || {_, V} <- Needed, newer_than_max(V)])
    end.

%%--------------------------------------------------------------------
%% A minimal ELF reader (64-bit, little-endian: the only kind shipped).

elf(<<16#7f, "ELF", 2, 1, _:10/binary, Type:16/little, Machine:16/little, _Version:32/little,
      _Entry:64/little, _PhOff:64/little, ShOff:64/little, _Flags:32/little, _EhSize:16/little,
      _PhEntSize:16/little, _PhNum:16/little, ShEntSize:16/little, ShNum:16/little,
      _ShStrNdx:16/little, _/binary>> = Bin) ->
    Sections = [
        section(binary:part(Bin, ShOff + I * ShEntSize, ShEntSize))
     || I <- lists:seq(0, ShNum - 1)
    ],
    #{type => Type, machine => Machine, sections => Sections};
elf(<<16#7f, "ELF", Class, Data, _/binary>>) ->
    ct:fail("not a 64-bit little-endian ELF file (class ~b, data ~b)", [Class, Data]);
elf(_) ->
    ct:fail("not an ELF file").

section(<<_Name:32/little, Type:32/little, _Flags:64/little, _Addr:64/little, Offset:64/little,
          Size:64/little, Link:32/little, Info:32/little, _/binary>>) ->
    #{type => Type, offset => Offset, size => Size, link => Link, info => Info}.

%% [{Library, "GLIBC_x.y"}] from the version needs (.gnu.version_r), each version once per library.
glibc_versions(Bin) ->
    #{sections := Sections} = elf(Bin),
    lists:usort([
        {File, Name}
     || #{type := ?SHT_GNU_VERNEED, offset := Off, info := Count, link := StrNdx} <- Sections,
        {File, Names} <- verneed(Bin, Off, Count, lists:nth(StrNdx + 1, Sections)),
        Name <- Names,
        lists:prefix("GLIBC_", Name),
        Name =/= "GLIBC_PRIVATE"
    ]).

verneed(_Bin, _Off, 0, _Strtab) ->
    [];
verneed(Bin, Off, Count, Strtab) ->
    <<_Vsn:16/little, Cnt:16/little, FileOff:32/little, Aux:32/little, Next:32/little>> =
        binary:part(Bin, Off, 16),
    Names = vernaux(Bin, Off + Aux, Cnt, Strtab),
    [{str(Bin, Strtab, FileOff), Names} | verneed(Bin, Off + Next, Count - 1, Strtab)].

vernaux(_Bin, _Off, 0, _Strtab) ->
    [];
vernaux(Bin, Off, Cnt, Strtab) ->
    <<_Hash:32/little, _Flags:16/little, _Other:16/little, NameOff:32/little, Next:32/little>> =
        binary:part(Bin, Off, 16),
    [str(Bin, Strtab, NameOff) | vernaux(Bin, Off + Next, Cnt - 1, Strtab)].

str(Bin, #{offset := StrOff}, At) ->
    [S | _] = binary:split(binary:part(Bin, StrOff + At, byte_size(Bin) - StrOff - At), <<0>>),
    binary_to_list(S).

%% "GLIBC_2.34" is newer than 2.17; "GLIBC_2.2.5" is not.
newer_than_max("GLIBC_" ++ Vsn) ->
    [list_to_integer(P) || P <- string:lexemes(Vsn, ".")] > ?MAX_GLIBC.

package_path() ->
    Path =
        case os:getenv("EMQX_GUARD_PACKAGE") of
            P when P =:= false; P =:= "" ->
                Root = find_root(filename:dirname(code:which(?MODULE))),
                {ok, [{application, emqx_guard, Props}]} =
                    file:consult(filename:join([Root, "erlang", "emqx_guard.app.src"])),
                filename:join([Root, "_build", "plugin", "emqx_guard-" ++ proplists:get_value(vsn, Props) ++ ".tar.gz"]);
            P ->
                P
        end,
    case filelib:is_regular(Path) of
        true -> Path;
        false -> ct:fail("package ~ts not found: run `make package` first", [Path])
    end.

find_root("/") ->
    ct:fail("cannot find the project root above ~ts", [code:which(?MODULE)]);
find_root(Dir) ->
    case filelib:is_regular(filename:join([Dir, "erlang", "emqx_guard.app.src"])) of
        true -> Dir;
        false -> find_root(filename:dirname(Dir))
    end.
