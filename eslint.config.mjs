import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

// Only these are linted; packages' vitest configs, generated output and .docs-check are not.
const sources = [
  "packages/*/src/**/*.ts",
  "packages/*/test/**/*.ts",
  "bench/src/**/*.ts",
  "examples/src/**/*.ts",
  "scripts/**/*.ts",
  "*.ts",
  "eslint.config.mjs"
]

export default defineConfig(
  {
    ignores: ["**/node_modules/**", "**/build/**", "**/dist/**", "docs/.docs-check/**", "**/*.d.ts"]
  },
  {
    files: sources,
    // Not type-checked on purpose: `tsc -b` already type-checks, and lint stays fast.
    extends: [js.configs.recommended, tseslint.configs.recommended, effectEslint.configs.dprint],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module"
    },
    rules: {
      // TypeScript already reports these, with types in hand.
      "no-fallthrough": "off",
      "no-redeclare": "off",
      "no-undef": "off",
      "object-shorthand": "error",
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-explicit-any": "off",
      // `declare namespace Tag { interface Service }` is how we attach types to a tag.
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/no-unused-vars": ["error", {
        argsIgnorePattern: "^_",
        varsIgnorePattern: "^_",
        caughtErrorsIgnorePattern: "^_",
        destructuredArrayIgnorePattern: "^_"
      }],
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }]
    }
  },
  {
    // The barrel pulls every module into the bundle; published sources import "effect/<Module>".
    files: ["packages/*/src/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        paths: [{
          name: "effect",
          message: "Import the module instead, e.g. `import * as Effect from \"effect/Effect\"`."
        }]
      }]
    }
  }
)
