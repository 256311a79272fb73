import { Project, StructureKind, VariableDeclarationKind, type SourceFile } from 'ts-morph';
import type { ScriptDef } from '../src/runtime/script-def.js';
import type { AlgorithmTable } from './algorithms.js';
import { CodegenError } from './errors.js';
import { camelCase, pascalCase } from './names.js';
import { keyField, tsArgType, tsReturnType } from './bindings.js';

const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { strict: true } });

/**
 * Reads a rendered binding back as a TypeScript AST and checks that its exported surface is what
 * the header promises: the function, the args interface (keys and arguments, optional exactly
 * where the header says so) and the result interface (one property per return field, in order).
 * A template change that drifts from the contract fails codegen here, not in a user's build.
 * Returns the binding with its imports organized.
 */
export function verifyBinding(def: ScriptDef, path: string, text: string): string {
  const sf = project.createSourceFile(`/verify/${path}`, text, { overwrite: true });
  // The template imports every runtime helper a binding might need; keep the ones this one uses.
  sf.organizeImports({ indentSize: 2, tabSize: 2, convertTabsToSpaces: true });
  const fail = (message: string): never => {
    throw new CodegenError(path, 1, `generated binding does not match the ${def.name} header: ${message}`);
  };
  const camel = camelCase(def.name);
  const pascal = pascalCase(def.name);

  const fn = sf.getFunction(camel);
  if (!fn?.isExported()) fail(`no exported function ${camel}`);
  if (fn!.getParameters().map((p) => p.getName()).join(',') !== 'client,args,options') fail(`${camel} must take (client, args, options)`);
  if (!sf.getVariableDeclaration(`${camel}Script`)?.isExported()) fail(`no exported ${camel}Script`);

  const argsIface = sf.getInterface(`${pascal}Args`);
  if (!argsIface?.isExported()) fail(`no exported interface ${pascal}Args`);
  const expectedArgs = [
    ...def.keys.filter((k) => !(k.variadic && def.each)).map((_, i) => ({ name: keyField(def, i), optional: false, type: def.keys[i]!.variadic ? 'string[]' : 'string' })),
    ...def.args.map((a) => ({ name: a.prop, optional: !a.required, type: tsArgType(a) })),
    ...(def.each ? [{ name: camelCase(def.each.name), optional: false, type: `${pascal}Item[]` }] : []),
  ];
  const actualArgs = argsIface!.getProperties().map((p) => ({ name: p.getName(), optional: p.hasQuestionToken(), type: p.getTypeNode()?.getText() }));
  if (JSON.stringify(actualArgs) !== JSON.stringify(expectedArgs)) {
    fail(`${pascal}Args is ${JSON.stringify(actualArgs)}, expected ${JSON.stringify(expectedArgs)}`);
  }

  const resultIface = sf.getInterface(`${pascal}Result`);
  if (!resultIface?.isExported()) fail(`no exported interface ${pascal}Result`);
  if (def.each) {
    const item = sf.getInterface(`${pascal}Item`);
    const itemProps = item?.getProperties().map((p) => `${p.getName()}${p.hasQuestionToken() ? '?' : ''}:${p.getTypeNode()?.getText()}`);
    // A variadic key gives each item its KEYS entry as `key`; without one, keys are group arguments.
    const keyed = def.keys.at(-1)?.variadic === true;
    const expectedItem = [...(keyed ? ['key:string'] : []), ...def.each.args.map((a) => `${a.prop}${a.required ? '' : '?'}:${tsArgType(a)}`)];
    if (JSON.stringify(itemProps) !== JSON.stringify(expectedItem)) fail(`${pascal}Item is ${JSON.stringify(itemProps)}, expected ${JSON.stringify(expectedItem)}`);
    const itemResult = sf.getInterface(`${pascal}ItemResult`)?.getProperties().map((p) => `${p.getName()}:${p.getTypeNode()?.getText()}`);
    const expectedItemResult = def.each.returns.map((r) => `${r.prop}:${tsReturnType(r)}`);
    if (JSON.stringify(itemResult) !== JSON.stringify(expectedItemResult)) fail(`${pascal}ItemResult is ${JSON.stringify(itemResult)}, expected ${JSON.stringify(expectedItemResult)}`);
  }
  const expectedReturns = [
    ...def.returns.map((r) => `${r.prop}:${tsReturnType(r)}`),
    ...(def.each ? [`${camelCase(def.each.name)}:${pascal}ItemResult[]${def.each.per ? '[]' : ''}`] : []),
  ];
  const actualReturns = resultIface!.getProperties().map((p) => `${p.getName()}:${p.getTypeNode()?.getText()}`);
  if (expectedReturns.join(',') !== actualReturns.join(',')) {
    fail(`${pascal}Result is {${actualReturns.join(', ')}}, expected {${expectedReturns.join(', ')}}`);
  }
  return sf.getFullText();
}

/** Builds generated/index.ts: re-exports every binding and lists every script definition. */
export function renderBarrel(defs: readonly ScriptDef[], table: AlgorithmTable): string {
  const sf: SourceFile = project.createSourceFile('/verify/generated/index.ts', '', { overwrite: true });
  for (const def of defs) {
    sf.addExportDeclaration({ moduleSpecifier: `./ts/${def.name}.js` });
  }
  sf.addImportDeclarations(
    defs.map((def) => ({ namedImports: [`${camelCase(def.name)}Script`], moduleSpecifier: `./ts/${def.name}.js` })),
  );
  sf.addExportDeclaration({ moduleSpecifier: './ts/functions-library.js' });
  sf.addExportDeclaration({ moduleSpecifier: './algorithms.js' });
  sf.addImportDeclaration({ isTypeOnly: true, namedImports: ['AlgoName'], moduleSpecifier: './algorithms.js' });
  sf.addImportDeclaration({ isTypeOnly: true, namedImports: ['ScriptDef'], moduleSpecifier: '../src/runtime/index.js' });
  sf.addVariableStatement({
    kind: StructureKind.VariableStatement,
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['Every script definition, in manifest order.'],
    declarations: [
      {
        name: 'allScripts',
        type: 'readonly ScriptDef[]',
        initializer: `[${defs.map((d) => `${camelCase(d.name)}Script`).join(', ')}]`,
      },
    ],
  });
  const ref = (name: string | null) => (name === null ? 'null' : `${camelCase(name)}Script`);
  sf.addVariableStatement({
    kind: StructureKind.VariableStatement,
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ["Each algorithm's scripts (see `algorithms`): consume, and its peek, refund and reserve companions where it has them."],
    declarations: [
      {
        name: 'algorithmScripts',
        type: 'Readonly<Record<AlgoName, { readonly consume: ScriptDef; readonly peek: ScriptDef; readonly refund: ScriptDef | null; readonly reserve: ScriptDef | null }>>',
        initializer: `{ ${table.algorithms.map((a) => `${a.name}: { consume: ${ref(a.scripts.consume)}, peek: ${ref(a.scripts.peek)}, refund: ${ref(a.scripts.refund)}, reserve: ${ref(a.scripts.reserve)} }`).join(', ')} }`,
      },
    ],
  });
  sf.formatText({ indentSize: 2, convertTabsToSpaces: true });
  return `// Generated by \`npm run codegen\`. Do not edit.\n${sf.getFullText().replace(/"/g, "'")}`;
}
